"""Match (method, path) to a spec operation: found, wrong method (405), or nothing (404)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from .spec import Operation


@dataclass(frozen=True, slots=True)
class RouteMatch:
    operation: Operation
    params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class MethodNotAllowed:
    allowed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NoRoute:
    pass


RouteResult = RouteMatch | MethodNotAllowed | NoRoute


class Router:
    """Concrete paths win over templated ones, whatever their order in the spec."""

    def __init__(self, operations: Iterable[Operation]) -> None:
        # fewer parameters first, then longer literal text: `/models` before `/models/{id}/endpoints`
        self._operations = sorted(
            operations,
            key=lambda op: (len(op.path_params), -len(op.pattern.pattern), op.path),
        )
        self._cache: dict[tuple[str, str], RouteResult] = {}

    def route(self, method: str, path: str) -> RouteResult:
        """Match once per distinct (method, path): clients repeat the same few paths."""
        key = (method, path)
        found = self._cache.get(key)
        if found is None:
            found = self._match(method, path)
            if len(self._cache) >= 4096:  # bounded: arbitrary paths from a fuzzer must not grow it
                self._cache.clear()
            self._cache[key] = found
        return found

    def _match(self, method: str, path: str) -> RouteResult:
        method = method.upper()
        allowed: list[str] = []
        for op in self._operations:
            found = op.pattern.match(path)
            if found is None:
                continue
            if op.method == method or (method == "HEAD" and op.method == "GET"):
                params = {k: unquote(v) for k, v in found.groupdict().items()}
                return RouteMatch(op, params)
            allowed.append(op.method)
        if allowed:
            if "GET" in allowed:
                allowed.append("HEAD")
            return MethodNotAllowed(tuple(sorted(set(allowed))))
        return NoRoute()
