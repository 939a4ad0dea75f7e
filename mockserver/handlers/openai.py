"""The OpenAI-compatible routes: generations (``/v1``, ``/api/v1``) and edits (multipart or JSON)."""

from __future__ import annotations

from ..call import Call
from ..errors import MockError
from ..messages import Outcome
from ..validation import ParsedBody, as_list
from .generation import generate
from .registry import handles

EDIT_IMAGE_PARTS = ("image", "image[]")
EDIT_DATA_URLS = ("imageDataUrl", "imageDataUrls")


@handles("openaiGenerateImage", "openaiGenerateImageApi")
def openai_generate(call: Call) -> Outcome:
    body = call.input.body
    model = call.services.catalog.get(str(body["model"]))
    sources, mask = call.services.inputs.data_url_inputs(body)
    return generate(call, model, body, sources, mask, image_param="imageDataUrl")


def image_required(parsed: ParsedBody) -> None:
    """An edit without any image gets the documented code, not the schema's generic one."""
    names = EDIT_IMAGE_PARTS if parsed.media_type.startswith("multipart/") else EDIT_DATA_URLS
    if not any(parsed.files.get(n) or parsed.data.get(n) for n in names):
        raise MockError("missing_image_input", f"image is required. Send {' or '.join(names)}.", "image")


@handles("openaiEditImage", "openaiEditImageAlias", precheck=image_required)
def openai_edit(call: Call) -> Outcome:
    inp, services = call.input, call.services
    inputs = services.inputs
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
