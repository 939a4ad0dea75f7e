"""Mutable state of one mock instance: the clock and the balance ledger. Explicit and resettable."""

from __future__ import annotations

import math
import threading
import time
from decimal import Decimal

from .errors import MockError

DEFAULT_BALANCE = Decimal("1000")
CLOCK_MIN = 0.0  # 1970-01-01T00:00:00Z
CLOCK_MAX = 32503680000.0  # 3000-01-01T00:00:00Z: every date the mock prints stays representable


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Money as Decimal so repeated charges never drift (0.1 + 0.2 problems)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


class Clock:
    """Wall-clock time plus an offset that tests can move (URL expiry, daily limits).

    The state is one immutable ``(offset, frozen_at)`` tuple swapped under a lock, so reading the
    time (several times per request) needs no lock.
    """

    def __init__(self) -> None:
        self._state: tuple[float, float | None] = (0.0, None)
        self._lock = threading.Lock()

    def now(self) -> float:
        offset, frozen_at = self._state
        return frozen_at if frozen_at is not None else time.time() + offset

    def advance(self, seconds: float, param: str = "advance") -> float:
        """Move the clock by ``seconds``; refused (state unchanged) when it would leave the range."""
        with self._lock:
            offset, frozen_at = self._state
            if frozen_at is not None:
                _check_time(frozen_at + seconds, param)
                self._state = (offset, frozen_at + seconds)
            else:
                _check_time(time.time() + offset + seconds, param)
                self._state = (offset + seconds, None)
        return self.now()

    def set(self, timestamp: float, *, frozen: bool = False, param: str = "set") -> float:
        """Set the clock to ``timestamp``; refused (state unchanged) outside ``CLOCK_MIN..CLOCK_MAX``."""
        _check_time(timestamp, param)
        with self._lock:
            self._state = (0.0, timestamp) if frozen else (timestamp - time.time(), None)
        return self.now()

    def reset(self) -> None:
        with self._lock:
            self._state = (0.0, None)

    def save(self) -> tuple[float, float | None]:
        """The clock's state, for :meth:`restore` (an admin change that fails half-way leaves no trace)."""
        return self._state

    def restore(self, state: tuple[float, float | None]) -> None:
        with self._lock:
            self._state = state

    @property
    def offset(self) -> float:
        """Seconds between the mock's clock and the wall clock."""
        return self.now() - time.time()

    @property
    def frozen(self) -> bool:
        return self._state[1] is not None


def _check_time(timestamp: float, param: str) -> None:
    if not (math.isfinite(timestamp) and CLOCK_MIN <= timestamp <= CLOCK_MAX):
        raise MockError(
            "invalid_parameter_value",
            f"The clock must stay between {CLOCK_MIN:.0f} (1970-01-01) and {CLOCK_MAX:.0f} (3000-01-01) "
            f"in Unix seconds; '{param}' would move it to {timestamp}.",
            param,
        )


class Ledger:
    """Per-key balances in USD. One lock makes check-and-charge atomic under concurrency."""

    def __init__(self, default_balance: Decimal | float | str = DEFAULT_BALANCE) -> None:
        self.default_balance = to_decimal(default_balance)
        self._balances: dict[str, Decimal] = {}
        self._lock = threading.Lock()

    def balance(self, key: str) -> Decimal:
        with self._lock:
            return self._balances.get(key, self.default_balance)

    def set_balance(self, key: str, amount: Decimal | float | str) -> Decimal:
        with self._lock:
            self._balances[key] = to_decimal(amount)
            return self._balances[key]

    def charge(self, key: str, cost: Decimal) -> Decimal:
        """Take ``cost`` from ``key``'s balance or refuse with the documented 402."""
        with self._lock:
            current = self._balances.get(key, self.default_balance)
            if cost > current:
                raise MockError(
                    "insufficient_balance",
                    "Insufficient balance",
                    extra={"requiredBalance": float(cost)},
                )
            remaining = current - cost
            self._balances[key] = remaining
            return remaining

    def refund(self, key: str, amount: Decimal) -> None:
        with self._lock:
            self._balances[key] = self._balances.get(key, self.default_balance) + amount

    def snapshot(self) -> dict[str, Decimal]:
        with self._lock:
            return dict(self._balances)

    def reset(self) -> None:
        with self._lock:
            self._balances.clear()
