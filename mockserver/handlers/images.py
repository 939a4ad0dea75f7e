"""The normalized Image API: ``POST /api/v1/images``."""

from __future__ import annotations

from ..call import Call
from ..errors import MockError
from ..messages import Outcome
from ..validation import ParsedBody, as_list
from .generation import generate
from .moderation import moderation_preflight
from .registry import handles

IMAGE_ALIASES = ("imageDataUrl", "imageDataUrls", "image_url", "images")  # legacy names of input_references


def documented_first(parsed: ParsedBody) -> None:
    """The route's own refusals, in the documented order, before any schema error."""
    data = parsed.data
    if not isinstance(data.get("model"), str) or not data.get("model"):
        raise MockError("missing_model", "model is required for /api/v1/images.", "model")
    if data.get("stream") is True:
        raise MockError("unsupported_stream", None, "stream")
    provider = data.get("provider")
    if provider is not None and provider != {}:
        raise MockError("unsupported_provider_options", None, "provider")
    if "input_references" in data and any(alias in data for alias in IMAGE_ALIASES):
        raise MockError("conflicting_image_inputs", None, "input_references")


@handles(
    "imagesGenerate",
    precheck=documented_first,
    code_for_param={"input_references": "invalid_input_references", "model": "missing_model"},
)
def images_generate(call: Call) -> Outcome:
    body, given = call.input.body, call.input.given
    model = call.services.catalog.get(body["model"])
    moderation_preflight(call)  # inputs inline moderation cannot inspect fail closed before decoding
    references = as_list(body.get("input_references")) or [
        ref for alias in IMAGE_ALIASES for ref in as_list(body.get(alias))
    ]
    sources = [call.services.inputs.reference(ref, model, "input_references") for ref in references]
    return generate(
        call,
        model,
        body,
        sources,
        image_param="input_references",
        n_param="nImages" if "nImages" in given else "n",  # documented: nImages beats n
        size_param="resolution" if "resolution" in given else "size",
    )
