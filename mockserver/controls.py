"""Testing controls: the ``Prefer`` header, the fault profile, one-shot faults, limits and the journal.

All of it is plain state with locks; the engine consults it at fixed points of the pipeline, and
the admin API (``admin-openapi.yaml``) reads and changes it.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from .errors import MockError
from .spec import Operation
from .state import to_decimal

DAY = 86_400
PREFER_HELP = (
    "code=<status or error code>, example=<error code>, latency=<milliseconds>, presign=fail, "
    "moderation=flagged|unavailable"
)
MODERATION_OUTCOMES = ("flagged", "unavailable")


@lru_cache(maxsize=4096)
def key_id(key: str | None) -> str | None:
    """A stable name for a key that does not reveal it (journal, admin API, logs)."""
    return None if key is None else "key_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def seconds_to_midnight(now: float) -> int:
    return max(1, math.ceil(DAY - (now % DAY)))


# -- the Prefer header -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Directives:
    """What the testing controls ask of one request, resolved once: a forced documented code, a
    latency, a presign failure, and which control asked (``prefer``, ``queue``, ``profile``)."""

    code: str | None = None
    latency_ms: float | None = None  # None: the fault profile's latency for what is generated
    presign_failure: bool = False
    source: str | None = None
    moderation: str | None = None  # inline moderation forced to flag / fail closed (Prefer: moderation=...)

    @property
    def empty(self) -> bool:
        return self.code is None and self.latency_ms is None and not self.presign_failure and self.moderation is None


NO_DIRECTIVES = Directives()


def choose_code(operation: Operation, code: str | None, status: int | None, source: str) -> str | None:
    """The documented code that ``code`` / ``status`` name on ``operation``, or a clear 400."""
    documented = operation.errors
    if code is not None:
        if code not in documented:
            raise MockError(
                "invalid_parameter_value",
                f"{source}: '{code}' is not an error code of {operation.operation_id}. "
                f"Documented: {', '.join(documented) or 'none'}.",
                "Prefer",
            )
        if status is not None and documented[code].status != status:
            raise MockError(
                "invalid_parameter_value",
                f"{source}: {code} is answered with {documented[code].status}, not {status}.",
                "Prefer",
            )
        return code
    if status is None or 200 <= status < 300:
        return None
    for name, template in documented.items():
        if template.status == status:
            return name
    statuses = sorted({t.status for t in documented.values()})
    raise MockError(
        "invalid_parameter_value",
        f"{source}: {operation.operation_id} documents no {status} answer. Documented statuses: "
        f"{', '.join(map(str, statuses))} (or 2xx).",
        "Prefer",
    )


def parse_prefer(header: str | None, operation: Operation) -> Directives:
    """Parse Prism's convention: ``Prefer: code=429, example=daily_rpd_limit_exceeded, latency=200``."""
    if not header or not header.strip():
        return NO_DIRECTIVES
    values: dict[str, str] = {}
    for part in header.replace(";", ",").split(","):
        if not part.strip():
            continue
        name, sep, value = part.strip().partition("=")
        name = name.strip().lower()
        value = value.strip().strip('"')
        if not sep or name not in ("code", "example", "latency", "presign", "dynamic", "moderation") or not value:
            raise MockError(
                "invalid_parameter_value",
                f"Prefer: '{part.strip()}' is not understood. Valid directives: {PREFER_HELP}. "
                f"Error codes of {operation.operation_id}: {', '.join(operation.errors) or 'none'}.",
                "Prefer",
            )
        values[name] = value
    status: int | None = None
    code: str | None = values.get("example")
    raw_code = values.get("code")
    if raw_code is not None:
        if raw_code.isdigit():
            status = int(raw_code)
        elif code is not None and code != raw_code:
            raise MockError("invalid_parameter_value", "Prefer: code and example name different errors.", "Prefer")
        else:
            code = raw_code
    latency: float | None = None
    if "latency" in values:
        try:
            latency = float(values["latency"])
        except ValueError:
            latency = -1.0
        if not 0 <= latency <= 60_000:
            raise MockError(
                "invalid_parameter_value",
                f"Prefer: latency must be milliseconds between 0 and 60000, got '{values['latency']}'.",
                "Prefer",
            )
    presign = values.get("presign")
    if presign is not None and presign != "fail":
        raise MockError("invalid_parameter_value", f"Prefer: presign accepts only 'fail', got '{presign}'.", "Prefer")
    moderation = values.get("moderation")
    if moderation is not None and moderation not in MODERATION_OUTCOMES:
        raise MockError(
            "invalid_parameter_value",
            f"Prefer: moderation accepts {' or '.join(MODERATION_OUTCOMES)}, got '{moderation}'.",
            "Prefer",
        )
    code = choose_code(operation, code, status, "Prefer")
    return Directives(code, latency, presign == "fail", "prefer", moderation)


# -- the fault profile -------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultProfile:
    """Global faults; field meanings are in admin-openapi.yaml (schema FaultProfile)."""

    seed: int = 0
    latency: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    error_rate: float = 0.0
    error_codes: tuple[str, ...] = ("server_error",)
    rate_limit_rps: float | None = None
    daily_request_limit: int | None = None
    daily_usd_limit: Decimal | None = None
    presign_failure_rate: float = 0.0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FaultProfile:
        """Build from a dict that already passed the FaultProfile schema."""
        usd = raw.get("daily_usd_limit")
        return cls(
            seed=int(raw.get("seed", 0)),
            latency={str(k): dict(v) for k, v in (raw.get("latency") or {}).items()},
            error_rate=float(raw.get("error_rate", 0.0)),
            error_codes=tuple(raw.get("error_codes") or ("server_error",)),
            rate_limit_rps=None if raw.get("rate_limit_rps") is None else float(raw["rate_limit_rps"]),
            daily_request_limit=None if raw.get("daily_request_limit") is None else int(raw["daily_request_limit"]),
            daily_usd_limit=None if usd is None else to_decimal(usd),
            presign_failure_rate=float(raw.get("presign_failure_rate", 0.0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "latency": {k: dict(v) for k, v in self.latency.items()},
            "error_rate": self.error_rate,
            "error_codes": list(self.error_codes),
            "rate_limit_rps": self.rate_limit_rps,
            "daily_request_limit": self.daily_request_limit,
            "daily_usd_limit": None if self.daily_usd_limit is None else float(self.daily_usd_limit),
            "presign_failure_rate": self.presign_failure_rate,
        }


@dataclass(slots=True)
class QueuedFault:
    """A one-shot fault from the admin API; resolved against the operation of the request it hits."""

    raw: dict[str, Any]
    remaining: int

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> QueuedFault:
        """Build from a dict that already passed the QueuedFault schema."""
        clean = {k: v for k, v in raw.items() if k != "count"}
        return cls(clean, int(raw.get("count", 1)))

    def matches(self, operation: Operation, path: str) -> bool:
        raw = self.raw
        if raw.get("operation_id") not in (None, operation.operation_id) or raw.get("path") not in (None, path):
            return False
        if raw.get("code") is not None and raw["code"] not in operation.errors:
            return False
        status = raw.get("status")
        return status is None or any(t.status == status for t in operation.errors.values())

    def directives(self, operation: Operation) -> Directives:
        code = choose_code(operation, self.raw.get("code"), self.raw.get("status"), "queued fault")
        latency = self.raw.get("latency_ms")
        return Directives(code, None if latency is None else float(latency), self.raw.get("presign") == "fail", "queue")


class Faults:
    """Fault profile, one-shot queue, rate and daily limits: one lock, replayable randomness."""

    def __init__(self, profile: FaultProfile | None = None) -> None:
        self.initial = profile or FaultProfile()
        self._lock = threading.Lock()
        self.reset()

    def reset(self, profile: FaultProfile | None = None) -> None:
        with self._lock:
            self.profile = profile or self.initial
            self._rng = random.Random(self.profile.seed)
            self._queue: list[QueuedFault] = []
            self._recent: dict[str, deque[float]] = {}
            self._daily_requests: dict[tuple[str, int], int] = {}
            self._daily_usd: dict[tuple[str, int], Decimal] = {}

    def set_profile(self, profile: FaultProfile) -> None:
        """Replace the profile; the generator restarts from its seed so a run replays."""
        with self._lock:
            self.profile = profile
            self._rng = random.Random(profile.seed)

    # -- one-shot faults -----------------------------------------------------------------
    def enqueue(self, fault: QueuedFault) -> None:
        with self._lock:
            self._queue.append(fault)

    def clear_queue(self) -> None:
        with self._lock:
            self._queue.clear()

    def queue_view(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**q.raw, "count": q.remaining} for q in self._queue]

    def take(self, operation: Operation, path: str) -> Directives:
        if not self._queue:  # the common case needs no lock
            return NO_DIRECTIVES
        with self._lock:
            for index, fault in enumerate(self._queue):
                if fault.matches(operation, path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._queue[index]
                    return fault.directives(operation)
        return NO_DIRECTIVES

    # -- random faults --------------------------------------------------------------------
    def random_error(self, operation: Operation) -> str | None:
        profile = self.profile
        if profile.error_rate <= 0:
            return None
        with self._lock:
            hit = self._rng.random() < profile.error_rate
            candidates = [c for c in profile.error_codes if c in operation.errors]
            return self._rng.choice(candidates) if hit and candidates else None

    def presign_fails(self) -> bool:
        if self.profile.presign_failure_rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < self.profile.presign_failure_rate

    def latency_ms(self, model_id: str, megapixels: float) -> float:
        rule = self.profile.latency.get(model_id) or self.profile.latency.get("*")
        if not rule:
            return 0.0
        median = float(rule.get("base_ms", 0.0)) + float(rule.get("per_megapixel_ms", 0.0)) * megapixels
        sigma = float(rule.get("sigma", 0.0))
        if median <= 0:
            return 0.0
        with self._lock:
            drawn = median * math.exp(self._rng.gauss(0.0, sigma)) if sigma > 0 else median
        return min(drawn, float(rule.get("max_ms", 60_000.0)))

    # -- limits ------------------------------------------------------------------------------
    def admit(self, key: str | None, now: float) -> None:
        """Count a request against the per-second and per-day limits, or refuse it with 429."""
        profile = self.profile
        if key is None or (profile.rate_limit_rps is None and profile.daily_request_limit is None):
            return
        with self._lock:
            if profile.rate_limit_rps is not None:
                window = self._recent.setdefault(key, deque())
                while window and window[0] <= now - 1.0:
                    window.popleft()
                if len(window) >= profile.rate_limit_rps:
                    wait = max(1, math.ceil(1.0 - (now - window[0])))
                    raise MockError(
                        "rate_limit_exceeded",
                        f"Rate limit exceeded: {profile.rate_limit_rps:g} requests per second.",
                        headers={"retry-after": str(wait)},
                    )
                window.append(now)
            if profile.daily_request_limit is not None:
                day = (key, int(now // DAY))
                used = self._daily_requests.get(day, 0)
                if used >= profile.daily_request_limit:
                    limit = profile.daily_request_limit
                    raise MockError(
                        "daily_rpd_limit_exceeded",
                        f"Daily request limit exceeded ({used}/{limit}). Resets at midnight UTC.",
                        headers={"retry-after": str(seconds_to_midnight(now))},
                    )
                self._daily_requests[day] = used + 1

    def check_spend(self, key: str, cost: Decimal, now: float) -> None:
        """Refuse a charge that would pass the per-key USD/day limit; record it otherwise."""
        limit = self.profile.daily_usd_limit
        if limit is None:
            return
        with self._lock:
            day = (key, int(now // DAY))
            spent = self._daily_usd.get(day, Decimal(0))
            if spent + cost > limit:
                raise MockError(
                    "daily_usd_limit_exceeded",
                    f"Daily USD limit exceeded (${spent:.4f} spent, ${limit:.4f} allowed). Resets at midnight UTC.",
                    headers={"retry-after": str(seconds_to_midnight(now))},
                )
            self._daily_usd[day] = spent + cost

    def refund_spend(self, key: str, cost: Decimal, now: float) -> None:
        if self.profile.daily_usd_limit is None:
            return
        with self._lock:
            day = (key, int(now // DAY))
            self._daily_usd[day] = self._daily_usd.get(day, Decimal(0)) - cost


def resolve_directives(
    faults: Faults,
    operation: Operation,
    path: str,
    prefer: str | None,
    key: str | None,
    now: float,
    *,
    presign_failure: bool = False,
) -> Directives:
    """Every testing control of one request, merged into one value, in a fixed order.

    The ``Prefer`` header wins; else a queued one-shot fault; else the request counts against the
    rate and daily limits (429 when over) and the fault profile may draw an error. A presign failure
    comes from any of them, from ``presign_failure`` (``--presign-failure``) or from the profile's
    rate (drawn for every request; only ``response_format: url`` requests can observe it).
    """
    directives = parse_prefer(prefer, operation)
    if directives.empty:
        directives = faults.take(operation, path)
    if directives.code is None:
        faults.admit(key, now)
        random_code = faults.random_error(operation)
        if random_code is not None:
            return Directives(
                random_code, directives.latency_ms, directives.presign_failure, "profile", directives.moderation
            )
    if not directives.presign_failure and (presign_failure or faults.presign_fails()):
        directives = Directives(directives.code, directives.latency_ms, True, directives.source, directives.moderation)
    return directives


# -- the journal -------------------------------------------------------------------------------


JOURNAL_FIELDS = (
    "time",
    "method",
    "path",
    "query",
    "operation_id",
    "key_id",
    "model",
    "status",
    "error_code",
    "cost",
    "fault",
    "delay_ms",
    "duration_ms",
    "images",
)


class Journal:
    """Bounded record of requests and answers. Keys never enter it: only ``key_id`` digests.

    Entries are stored as tuples in ``JOURNAL_FIELDS`` order (recording sits on every request's path)
    and become dicts only when read.
    """

    def __init__(self, maxlen: int = 10_000) -> None:
        self._entries: deque[tuple[Any, ...]] = deque(maxlen=maxlen)
        self._seq = 0
        self._lock = threading.Lock()

    def record(self, *values: Any) -> None:
        """Append one entry; ``values`` follow ``JOURNAL_FIELDS``."""
        with self._lock:
            self._seq += 1
            self._entries.append((self._seq, *values))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._seq = 0

    def entries(
        self,
        *,
        path: str | None = None,
        operation_id: str | None = None,
        key: str | None = None,
        status: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        wanted_key = key_id(key) if key is not None else None
        with self._lock:
            rows = list(self._entries)
        names = ("seq", *JOURNAL_FIELDS)
        out = [dict(zip(names, row, strict=True)) for row in rows]
        out = [
            e
            for e in out
            if (path is None or e["path"] == path)
            and (operation_id is None or e["operation_id"] == operation_id)
            and (wanted_key is None or e["key_id"] == wanted_key)
            and (status is None or e["status"] == status)
        ]
        for e in out:
            e["delay_ms"] = round(e["delay_ms"], 3)
            e["duration_ms"] = round(e["duration_ms"], 3)
            e["cost"] = None if e["cost"] is None else float(e["cost"])
            images = e["images"]
            e["images"] = list(images() if callable(images) else images)
        return out[-limit:] if limit else out
