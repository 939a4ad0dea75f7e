"""The values that flow through the pipeline: what a handler gets (``Call``) and gives back (``Outcome``).

route -> authenticate -> resolve controls (``Directives``) -> validate (``Input``) -> handle
(``Outcome``) -> render (``MockResponse``). Each stage returns one of these values; none is mutated
by a later stage, so each stage can be driven and tested without HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from .billing import Charge
from .catalog import Catalog
from .config import MockConfig
from .controls import Directives, Faults
from .files import Files
from .inputs import Inputs
from .messages import MockRequest, Outcome
from .payments import Payments
from .render import Renderer
from .spec import Operation
from .state import Clock, Ledger
from .validation import Input


@dataclass(frozen=True)
class Services:
    """What handlers may use: the instance's data, renderer and state (never the engine itself)."""

    config: MockConfig
    catalog: Catalog
    renderer: Renderer
    files: Files
    inputs: Inputs
    clock: Clock
    ledger: Ledger
    faults: Faults
    payments: Payments


@dataclass(frozen=True)
class Call:
    """One routed, authenticated, validated request, as its operation's handler sees it."""

    request: MockRequest
    operation: Operation
    params: Mapping[str, str]
    key: str | None  # None: an anonymous call the operation (or an x402 quote) allows
    directives: Directives
    input: Input
    services: Services

    def charge(self, cost: Decimal) -> Charge:
        """Take ``cost`` from the caller (402/429 when it cannot); use it as ``with call.charge(c) as charge:``."""
        assert self.key is not None, "an anonymous call cannot be charged"
        s = self.services
        return Charge(s.ledger, s.faults, self.key, cost, s.clock.now())


__all__ = ["Call", "Outcome", "Services"]
