"""Stateless, HMAC-signed, expiring image URLs.

The URL carries everything needed to re-render the image (model, size, seed, index, format and a
digest of the prompt), so any mock process holding the same secret can serve it. Edits depend on
uploaded bytes, so their URLs name a digest in the serving process's bounded store instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

FILES_PREFIX = "/_mock/files/"


class SignatureError(ValueError):
    """A signed URL was tampered with or is malformed."""


@dataclass(frozen=True, slots=True)
class SignedPayload:
    payload: dict[str, Any]
    expires: int


class UrlSigner:
    def __init__(self, secret: str | bytes) -> None:
        self._key = secret.encode() if isinstance(secret, str) else secret

    def _mac(self, token: str, expires: int) -> str:
        message = f"{token}|{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, payload: dict[str, Any], extension: str, expires: int) -> str:
        """Return the path + query of a signed URL (the caller prefixes scheme and host)."""
        token = base64.urlsafe_b64encode(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).decode().rstrip("=")
        name = f"{token}.{extension}"
        return f"{FILES_PREFIX}{name}?expires={expires}&signature={self._mac(name, expires)}"

    def verify(self, name: str, expires_text: str | None, signature: str | None) -> SignedPayload:
        """Check the MAC (constant time) and decode; expiry is the caller's decision (it owns the clock)."""
        if not expires_text or not signature or not expires_text.isdigit():
            raise SignatureError("missing or malformed expires/signature")
        expires = int(expires_text)
        if not hmac.compare_digest(self._mac(name, expires), signature):
            raise SignatureError("signature does not match")
        token = name.rsplit(".", 1)[0]
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise SignatureError("undecodable payload") from exc
        if not isinstance(payload, dict):
            raise SignatureError("payload is not an object")
        return SignedPayload(payload, expires)
