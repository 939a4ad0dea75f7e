"""Signed image URLs: minting them, the store of edit outputs they may name, and serving them.

A generation URL carries everything needed to re-render its image (model, prompt label, size,
seed, index, format), so any mock process with the same signing secret serves it. Edit outputs
depend on uploaded bytes: their URLs name a digest in this process's bounded store instead.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any, cast

from .errors import MockError
from .lru import BytesLRU
from .messages import MockRequest, Outcome
from .render import MEDIA_TYPES, OutputFormat, Renderer, RenderRequest
from .signing import FILES_PREFIX, SignatureError, UrlSigner
from .state import Clock

FILE_OPERATION = "adminFileGet"  # admin-openapi.yaml documents the answers of signed URLs
CACHE_CONTROL = "private, max-age=3600"


class Files:
    def __init__(
        self,
        signer: UrlSigner,
        clock: Clock,
        renderer: Renderer,
        *,
        store_bytes: int,
        url_ttl: int,
        public_base_url: str | None,
    ) -> None:
        self._signer = signer
        self._clock = clock
        self._renderer = renderer
        self._stored = BytesLRU(store_bytes)
        self._url_ttl = url_ttl
        self._public_base_url = public_base_url

    def clear(self) -> None:
        self._stored.clear()

    def store(self, image: bytes) -> str:
        """Keep an edit output for its URL; the name is a digest of the bytes."""
        digest = hashlib.sha256(image).hexdigest()[:32]
        self._stored.put(digest, image)
        return digest

    def lazy_urls(self, base_url: str, wanted: tuple[RenderRequest, ...]) -> Callable[[], tuple[str, ...]]:
        """URLs signed when called, with the expiry of now: the journal's links to b64 images cost
        nothing unless the journal is read."""
        expires = int(self._clock.now()) + self._url_ttl
        return functools.partial(self._urls, base_url, wanted, expires)

    def _urls(self, base_url: str, wanted: tuple[RenderRequest, ...], expires: int) -> tuple[str, ...]:
        return tuple(self.url(base_url, w, expires=expires) for w in wanted)

    def url(
        self, base_url: str, wanted: RenderRequest, stored: str | None = None, *, expires: int | None = None
    ) -> str:
        """A signed, expiring URL of ``wanted`` (re-rendered on GET), or of a stored edit output."""
        fmt = wanted.output_format
        payload: dict[str, Any] = (
            {"d": stored, "f": fmt}
            if stored
            else {
                "m": wanted.model,
                "p": wanted.prompt,
                "w": wanted.width,
                "h": wanted.height,
                "s": wanted.seed,
                "i": wanted.index,
                "f": fmt,
            }
        )
        if expires is None:
            expires = int(self._clock.now()) + self._url_ttl
        base = (self._public_base_url or base_url).rstrip("/")
        return base + self._signer.sign(payload, "jpg" if fmt == "jpeg" else fmt, expires)

    def own(self, url: str) -> bytes | None:
        """The bytes behind one of this mock's own signed URLs (an input reference), else ``None``."""
        path, _, query = url.partition("?")
        marker = path.find(FILES_PREFIX)
        if marker < 0:
            return None
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        try:
            outcome = self.serve(MockRequest("GET", path[marker:], tuple(params.items())))
        except MockError:
            return None
        return outcome.raw

    def serve(self, request: MockRequest) -> Outcome:
        """GET a signed URL: the image, or 403 tampered, 410 expired, 404 no longer stored."""
        name = request.path[len(FILES_PREFIX) :]
        query = dict(request.query)
        try:
            signed = self._signer.verify(name, query.get("expires"), query.get("signature"))
        except SignatureError as exc:
            raise MockError("invalid_signature", f"Invalid image URL signature: {exc}.") from None
        if self._clock.now() > signed.expires:
            raise MockError("url_expired", "This image URL has expired; generate the image again.")
        p = signed.payload
        fmt = str(p.get("f", ""))
        if fmt not in MEDIA_TYPES:
            raise MockError("invalid_signature", "Invalid image URL payload.")
        if p.get("d"):
            image = self._stored.get(str(p["d"]))
            if image is None:
                raise MockError("file_not_found", "This image is no longer stored by this mock process.")
        else:
            try:
                wanted = RenderRequest(
                    str(p["m"]),
                    str(p["p"]),
                    int(p["w"]),
                    int(p["h"]),
                    int(p["s"]),
                    int(p["i"]),
                    cast(OutputFormat, fmt),
                )
            except (KeyError, TypeError, ValueError):
                raise MockError("invalid_signature", "Invalid image URL payload.") from None
            image = self._renderer.render(wanted)
        return Outcome(200, raw=image, media_type=MEDIA_TYPES[fmt], headers={"cache-control": CACHE_CONTROL})
