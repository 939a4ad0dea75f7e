"""Charging as one construct: a charge is taken once, and refunded on any failure before a 2xx leaves.

A handler takes a :class:`Charge` when it has priced the work; the charge travels in the outcome to
the outer layer, which calls :meth:`Charge.settle` once the 2xx is delivered. Anything else (an
exception in the handler, a response that fails before it is sent, a client that disconnects during
the simulated latency) ends in :meth:`Charge.refund`, so a key never pays for an answer it did not get.
"""

from __future__ import annotations

import threading
from decimal import Decimal

from .controls import Faults
from .state import Ledger


class Charge:
    """Money taken from one key for one request; settled or refunded exactly once."""

    __slots__ = ("_faults", "_ledger", "_lock", "_state", "cost", "key", "now", "remaining")

    def __init__(self, ledger: Ledger, faults: Faults, key: str, cost: Decimal, now: float) -> None:
        self._ledger = ledger
        self._faults = faults
        self.key = key
        self.cost = cost
        self.now = now
        faults.check_spend(key, cost, now)  # 429 daily_usd_limit_exceeded before any money moves
        try:
            self.remaining = ledger.charge(key, cost)  # 402 insufficient_balance
        except BaseException:
            faults.refund_spend(key, cost, now)
            raise
        self._state = "open"
        self._lock = threading.Lock()

    def __enter__(self) -> Charge:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        """Leaving the block by an exception refunds: the work the money paid for did not happen."""
        if kind is not None:
            self.refund()

    @property
    def open(self) -> bool:
        return self._state == "open"

    @property
    def refunded(self) -> bool:
        return self._state == "refunded"

    def settle(self) -> None:
        """The 2xx left: the money stays taken."""
        with self._lock:
            if self._state == "open":
                self._state = "settled"

    def refund(self) -> None:
        """Give the money back (idempotent; a settled charge stays settled)."""
        with self._lock:
            if self._state != "open":
                return
            self._state = "refunded"
        self._ledger.refund(self.key, self.cost)
        self._faults.refund_spend(self.key, self.cost, self.now)
