"""Authentication as each operation's ``security`` declares it: Bearer or ``x-api-key``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .errors import MockError
from .spec import Operation, SecurityScheme


def credential(scheme: SecurityScheme, headers: Mapping[str, str]) -> str | None:
    """The key a request presents through ``scheme``, if any."""
    raw = headers.get(scheme.header)
    if raw is None:
        return None
    if scheme.kind == "bearer":
        prefix, _, token = raw.partition(" ")
        return token.strip() or None if prefix.lower() == "bearer" else None
    return raw.strip() or None


def authenticate(
    operation: Operation,
    headers: Mapping[str, str],
    accept: Callable[[str], bool],
    *,
    allow_anonymous: bool = False,
) -> str | None:
    """Return the caller's key, ``None`` for an anonymous call that the operation allows.

    ``allow_anonymous`` lets a caller through without a key where the engine has another way
    to answer (the x402 quote); a key that is presented is still checked.
    """
    if operation.anonymous_allowed:
        return None
    presented = False
    for alternative in operation.security:
        if not alternative:
            continue  # the x402 alternative: decided by ``allow_anonymous`` below
        keys = [credential(scheme, headers) for scheme in alternative]
        if all(keys):  # every scheme of this alternative is satisfied
            presented = True
            for key in keys:
                if key and accept(key):
                    return key
    if presented:
        raise MockError("invalid_api_key", "Invalid API key provided.")
    if allow_anonymous:
        return None
    schemes = sorted({s.header for alt in operation.security for s in alt})
    raise MockError(
        "missing_api_key",
        "Missing API key. Send it as "
        + " or ".join("'Authorization: Bearer <key>'" if h == "authorization" else f"'{h}: <key>'" for h in schemes)
        + ".",
    )


def accountless_x402(headers: Mapping[str, str]) -> bool:
    """An opted-in x402 call: a quote request (`x-x402: true`) or a paid replay (`X-PAYMENT`, L402).

    Multipart uploads "require normal auth before conversion" (x402 page): never accountless.
    """
    if headers.get("content-type", "").lower().startswith("multipart/"):
        return False
    return (
        headers.get("x-x402", "").lower() == "true"
        or bool(headers.get("x-payment"))
        or headers.get("authorization", "").lower().startswith("l402 ")
    )
