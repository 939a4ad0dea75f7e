"""Input images, however a client sends them: data URLs, multipart uploads, URL references.

Every image passes the route preflight of the catalog (``routes.input_images``) before a handler
sees it. The mock never fetches the internet: a URL that is not one of its own signed files stands
for a deterministic rendered image.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .catalog import InputLimits, Model
from .errors import MockError
from .render import InvalidImage, Renderer, RenderRequest, image_info
from .validation import UploadedFile, as_list

DATA_URL = re.compile(r"^data:(image/[a-z0-9.+-]+)?(;[a-z0-9=.+-]+)*;base64,", re.IGNORECASE)
REFERENCE_SIZE = 512  # the stand-in for an image the mock cannot fetch


@dataclass(frozen=True, slots=True)
class SourceImage:
    """An input image as bytes, with the size its header declares (checked against the route preflight
    and the pixel budget before anything decodes it)."""

    data: bytes
    width: int = 0
    height: int = 0
    param: str = "image"

    @property
    def pixels(self) -> int:
        return self.width * self.height


def bomb(exc: BaseException) -> bool:
    """Pillow's own decompression-bomb guard tripped (an error, or its warning turned into one)."""
    cause = exc.__cause__ or exc.__context__
    return isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning) or isinstance(
        cause, Image.DecompressionBombError | Image.DecompressionBombWarning
    )


def short_digest(text: str) -> str:
    """Texts (prompts, URLs) enter images and URLs as a short digest: URLs stay short, texts private."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Inputs:
    """Decodes and checks input images for one mock instance."""

    def __init__(
        self,
        limits: InputLimits,
        data_url_max_bytes: int,
        renderer: Renderer,
        own_file: Callable[[str], bytes | None],
        *,
        max_input_pixels: int,
        max_request_pixels: int,
    ) -> None:
        self.limits = limits
        self.data_url_max_bytes = data_url_max_bytes
        self.max_input_pixels = max_input_pixels
        self.max_request_pixels = max_request_pixels
        self._renderer = renderer
        self._own_file = own_file

    def data_url(self, value: Any, param: str) -> SourceImage:
        """A data URL of the OpenAI-compatible routes (direct URLs are documented as unsupported there)."""
        if not isinstance(value, str) or not DATA_URL.match(value):
            raise MockError(
                "invalid_parameter_value",
                f"{param} must be a base64 data URL (data:image/<type>;base64,...); direct URL input is not supported.",
                param,
            )
        return self._decode_data_url(value, param, self.data_url_max_bytes, "invalid_parameter_value")

    def data_url_inputs(self, body: Mapping[str, Any]) -> tuple[list[SourceImage], SourceImage | None]:
        """``imageDataUrl`` / ``imageDataUrls`` / ``maskDataUrl`` of a body that passed the schema."""
        urls = [*as_list(body.get("imageDataUrl")), *as_list(body.get("imageDataUrls"))]
        sources = [self.data_url(u, "imageDataUrl") for u in urls]
        mask = self.data_url(body["maskDataUrl"], "maskDataUrl") if body.get("maskDataUrl") else None
        return sources, mask

    def upload(self, upload: UploadedFile, param: str) -> SourceImage:
        return self._checked(upload.data, param, self.data_url_max_bytes, "invalid_parameter_value")

    def reference(self, ref: Any, model: Model | None, param: str) -> SourceImage:
        """An input reference: a data URL (decoded), this mock's own signed URL, or any other URL."""
        bad = "invalid_input_references" if param == "input_references" else "invalid_parameter_value"
        limit = model.input_max_bytes if model else self.data_url_max_bytes
        url = ref.get("image_url", {}).get("url") if isinstance(ref, dict) else ref
        if not isinstance(url, str) or not url:
            raise MockError(
                bad, "input_references must be an array of image URL strings, data URLs or image_url objects.", param
            )
        if url.startswith("data:"):
            if not DATA_URL.match(url):
                raise MockError(bad, f"{param}: data URLs must be data:image/<type>;base64,...", param)
            return self._decode_data_url(url, param, limit, bad)
        if not url.startswith(("http://", "https://")):
            raise MockError(bad, f"{param}: '{url[:60]}' is neither an http(s) URL nor a data URL.", param)
        own = self._own_file(url)
        if own is not None:
            return self._checked(own, param, len(own), bad)
        seed = int.from_bytes(hashlib.sha256(url.encode()).digest()[:4], "big")
        stand_in = RenderRequest("input-reference", short_digest(url), REFERENCE_SIZE, REFERENCE_SIZE, seed)
        return SourceImage(self._renderer.render(stand_in), REFERENCE_SIZE, REFERENCE_SIZE, param)

    def check_request(self, images: Iterable[SourceImage | None]) -> None:
        """The per-request pixel budget over every input image (and mask) of one request, read from
        their headers: refused before any of them is decoded."""
        given = [image for image in images if image is not None]
        total = sum(image.pixels for image in given)
        if total > self.max_request_pixels:
            raise MockError(
                "image_input_too_large",
                f"The input images of this request declare {total} pixels in all; the limit is "
                f"{self.max_request_pixels} pixels per request.",
                given[-1].param,
            )

    def _decode_data_url(self, value: str, param: str, limit: int, bad_code: str) -> SourceImage:
        payload = value[value.index(",") + 1 :]
        if len(payload) * 3 // 4 > limit + 3:
            raise MockError("image_input_too_large", f"{param}: image is larger than {limit} bytes.", param)
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise MockError(bad_code, f"{param}: the data URL is not valid base64.", param) from None
        return self._checked(data, param, limit, bad_code)

    def _checked(self, data: bytes, param: str, limit: int, bad_code: str) -> SourceImage:
        if len(data) > limit:
            raise MockError(
                "image_input_too_large", f"{param}: image is {len(data)} bytes; the limit is {limit}.", param
            )
        try:
            info = image_info(data)  # the header only: Pillow decodes nothing before .load()
        except InvalidImage as exc:
            if bomb(exc):
                raise MockError(
                    "image_input_too_large",
                    f"{param}: the image declares more pixels than the decoder allows; the limit is "
                    f"{self.max_input_pixels} pixels per input image.",
                    param,
                ) from None
            raise MockError(bad_code, f"{param}: not a decodable image ({exc}).", param) from None
        limits, width, height = self.limits, info.width, info.height
        if width < limits.min_width or height < limits.min_height:
            raise MockError(
                bad_code,
                f"{param}: images must be at least {limits.min_width}x{limits.min_height} pixels, "
                f"got {width}x{height}.",
                param,
            )
        if width > limits.max_width or height > limits.max_height:
            raise MockError(
                "image_input_too_large",
                f"{param}: images must be at most {limits.max_width}x{limits.max_height} pixels, got {width}x{height}.",
                param,
            )
        if width * height > self.max_input_pixels:
            raise MockError(
                "image_input_too_large",
                f"{param}: the image declares {width}x{height} = {width * height} pixels; the limit is "
                f"{self.max_input_pixels} pixels per input image.",
                param,
            )
        return SourceImage(data, width, height, param)
