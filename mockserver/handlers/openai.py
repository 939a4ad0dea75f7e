"""The OpenAI-compatible routes: generations (``/v1``, ``/api/v1``) and edits (multipart or JSON)."""

from __future__ import annotations

from typing import Any

from ..call import Call
from ..errors import MockError
from ..inputs import SourceImage
from ..messages import Outcome
from ..validation import ParsedBody, as_list
from .generation import generate
from .moderation import moderation_preflight
from .registry import handles

EDIT_IMAGE_PARTS = ("image", "image[]")
EDIT_DATA_URLS = ("imageDataUrl", "imageDataUrls")


def _image(call: Call, value: Any, param: str) -> SourceImage:
    """A data URL, or an https URL NanoGPT "fetches and normalizes to a data URL server-side" (2025 guide)."""
    inputs = call.services.inputs
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return inputs.reference(value, None, param)
    return inputs.data_url(value, param)


@handles("openaiGenerateImage", "openaiGenerateImageApi")
def openai_generate(call: Call) -> Outcome:
    body = call.input.body
    model = call.services.catalog.get(str(body["model"]))
    moderation_preflight(call)
    urls = [*as_list(body.get("imageDataUrl")), *as_list(body.get("imageDataUrls"))]
    sources = [_image(call, u, "imageDataUrl") for u in urls]
    sources += [_image(call, u, "image") for u in as_list(body.get("image"))]  # skills file: `image` (a URL)
    mask = _image(call, body["maskDataUrl"], "maskDataUrl") if body.get("maskDataUrl") else None
    size_param = "size" if body.get("size") is not None or body.get("resolution") is None else "resolution"
    return generate(
        call,
        model,
        body,
        sources,
        mask,
        image_param="imageDataUrl" if urls or not sources else "image",
        size_param=size_param,  # `resolution` is a synonym clients send (size wins)
    )


def image_required(parsed: ParsedBody) -> None:
    """An edit without any image gets the documented code, not the schema's generic one."""
    names = EDIT_IMAGE_PARTS if parsed.media_type.startswith("multipart/") else EDIT_DATA_URLS
    if not any(parsed.files.get(n) or parsed.data.get(n) for n in names):
        raise MockError("missing_image_input", f"image is required. Send {' or '.join(names)}.", "image")


@handles("openaiEditImage", "openaiEditImageAlias", precheck=image_required)
def openai_edit(call: Call) -> Outcome:
    inp, services = call.input, call.services
    inputs = services.inputs
    moderation_preflight(call)
    if inp.multipart:
        sources = [inputs.upload(u, n) for n in EDIT_IMAGE_PARTS for u in inp.files.get(n, ())]
        sources += [inputs.reference(v, None, n) for n in EDIT_IMAGE_PARTS for v in as_list(inp.fields.get(n))]
        mask = inputs.upload(inp.files["mask"][0], "mask") if inp.files.get("mask") else None
    else:
        sources, mask = inputs.data_url_inputs(inp.body)
    model = services.catalog.get(str(inp.body.get("model") or services.catalog.routes.edit_default_model))
    return generate(
        call, model, inp.body, sources, mask, image_param="image" if inp.multipart else "imageDataUrl", edit=True
    )
