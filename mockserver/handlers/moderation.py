"""Moderation: NSFW image classification, the moderation models, and inline moderation of image routes.

Inline moderation (``moderation`` / ``moderation-model`` headers, documented on the inline-moderation
page) runs on the operations that document ``content_policy_violation``; :func:`moderate` is called by
the shared generation path. The mock's verdict is deterministic: a prompt containing ``[mock:flagged]``
is flagged, one containing ``[mock:moderation-down]`` fails closed (503), and ``Prefer:
moderation=flagged|unavailable`` does the same without touching the prompt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..call import Call
from ..catalog import ModerationModel
from ..errors import MockError
from ..messages import Outcome
from ..validation import ParsedBody, as_list
from .registry import handles

NSFW_FIELDS = ("image_urls", "imageUrls", "imageUrl", "imageDataUrl", "imageDataUrls")
FLAG_MARKER = "[mock:flagged]"
DOWN_MARKER = "[mock:moderation-down]"
TRUTHY = frozenset({"true", "1", "yes", "on"})
FALSY = frozenset({"false", "0", "no", "off"})
# request fields that carry images, per the image routes' schemas (multipart uploads count as inspectable)
IMAGE_FIELDS = ("input_references", "imageDataUrl", "imageDataUrls", "image_url", "images", "image", "image[]")


# --------------------------------------------------------------------------------------------- NSFW


def _is_image_url(value: str) -> bool:
    return value.startswith(("http://", "https://", "data:image/"))


def nsfw_inputs(parsed: ParsedBody) -> None:
    """The documented refusal first: no image at all is "No valid image URLs provided"."""
    if not any(parsed.data.get(name) not in (None, "", []) for name in NSFW_FIELDS):
        raise MockError("missing_image_input", "No valid image URLs provided", "image_urls")


def _flagged(url: str) -> bool:
    """The mock's classifier: `nsfw` in the URL (for a data URL: in its header, before the comma)."""
    head = url.split(",", 1)[0] if url.startswith("data:") else url
    return "nsfw" in head.lower()


@handles("nsfwClassifyImage", precheck=nsfw_inputs)
def classify(call: Call) -> Outcome:
    body = call.input.body
    classifier = call.services.catalog.nsfw_classifier
    name = str(classifier.get("id", "nsfw-classifier"))
    if body.get("model", name) != name:
        raise MockError("invalid_parameter_value", f"Invalid value for 'model': only {name} is supported.", "model")
    urls: list[str] = []
    for field in NSFW_FIELDS:
        for value in as_list(body.get(field)):
            if not isinstance(value, str) or not _is_image_url(value):
                raise MockError("missing_image_input", "No valid image URLs provided", field)
            urls.append(value)
    limit = int(classifier.get("max_images", 10))
    processed = urls[:limit]
    cost = Decimal(str(classifier.get("price_usd_per_image", "0.0015"))) * len(processed)
    flags = [_flagged(u) for u in processed]
    request_id = "req_" + hashlib.sha256(call.request.body).hexdigest()[:16]
    with call.charge(cost) as charge:
        payload = {
            "model": name,
            "requestId": request_id,
            "inputCount": len(processed),
            "cost": float(cost),
            "currency": "USD",
            "truncated": len(urls) > limit,
            "has_nsfw_concepts": flags,
            "is_nsfw": any(flags),
        }
    return Outcome(200, payload, charge=charge)


# --------------------------------------------------------------------------------------------- models


@handles("listModerationModels")
def moderation_models(call: Call) -> Outcome:
    detailed = bool(call.input.query.get("detailed", True))
    return Outcome(200, call.services.catalog.moderation_models_body(detailed))


# --------------------------------------------------------------------------------------------- inline


@dataclass(frozen=True)
class Moderated:
    """An inline moderation check that passed: its model and cost, reported in the response headers."""

    model: str
    cost: Decimal

    def headers(self, flagged: bool = False) -> dict[str, str]:
        return {
            "x-nanogpt-inline-moderation-model": self.model,
            "x-nanogpt-inline-moderation-flagged": "true" if flagged else "false",
            "x-nanogpt-inline-moderation-cost-usd": f"{self.cost:.8f}",
        }


def _requested_model(call: Call) -> str | None:
    """The moderation model the headers ask for, or None when moderation is off (documented rules)."""
    headers = call.request.headers
    raw = headers.get("moderation", "").strip()
    if not raw or raw.lower() in FALSY:
        return None
    chosen = headers.get("moderation-model", "").strip() or None
    if raw.lower() in TRUTHY:
        return chosen or call.services.catalog.moderation_default or ""
    if chosen is not None and chosen != raw:
        raise MockError("conflicting_moderation_model", "Conflicting moderation headers.", "moderation")
    return raw


def _image_values(call: Call) -> list[str | None]:
    """Every image input of the request: its text value, or None for an uploaded file (converted, inspectable)."""
    inp = call.input
    values: list[str | None] = [None for name in IMAGE_FIELDS for _ in inp.files.get(name, ())]
    source = inp.fields if inp.multipart else inp.body
    for name in IMAGE_FIELDS:
        for ref in as_list(source.get(name)):
            url = ref.get("image_url", {}).get("url") if isinstance(ref, Mapping) else ref
            values.append(url if isinstance(url, str) else "")
    return values


def _check_inputs(model: ModerationModel, prompt: str, images: list[str | None]) -> int:
    """The documented refusals of an input the model cannot moderate; answers its token count."""
    if any(v is not None and not _is_image_url(v) for v in images):
        raise MockError(
            "unsupported_moderation_input",
            "Inline moderation does not support one or more submitted image inputs. "
            "Use an HTTP(S) image URL or data:image URL instead.",
            "moderation",
        )
    if not prompt.strip() and not images:
        raise MockError(
            "empty_moderation_input",
            "Inline moderation was requested but no text or image input could be extracted.",
            "moderation",
        )
    if images and not model.image:
        raise MockError(
            "unsupported_input_modality", f"Moderation model '{model.id}' cannot moderate image input.", "moderation"
        )
    if len(images) > 1 and not model.batch:
        raise MockError(
            "unsupported_batch_input",
            f"Moderation model '{model.id}' does not support batched moderation input ({len(images)} images).",
            "moderation",
        )
    tokens = model.tokens(prompt, len(images))
    if tokens > model.context_length:
        raise MockError(
            "context_length_exceeded",
            f"The moderation input ({tokens} tokens) exceeds the limit of '{model.id}' ({model.context_length}).",
            "moderation",
        )
    return tokens


def moderation_preflight(call: Call) -> tuple[ModerationModel, int] | None:
    """The moderation model and input size, or None when moderation is off; the documented refusals of
    the headers and of inputs moderation cannot inspect come first, before the route decodes images."""
    if "content_policy_violation" not in call.operation.errors:
        return None
    wanted = _requested_model(call)
    if wanted is None:
        return None
    if call.key is None:
        raise MockError(
            "inline_moderation_requires_api_key",
            "Inline moderation is currently supported for authenticated API-key requests only.",
            "moderation",
        )
    model = call.services.catalog.moderation_model(wanted)
    prompt = str((call.input.fields if call.input.multipart else call.input.body).get("prompt") or "")
    return model, _check_inputs(model, prompt, _image_values(call))


def moderate(call: Call, prompt: str) -> Moderated | None:
    """Run inline moderation when the request asks for it and the operation supports it.

    Flagged: the check is charged, generation is not, 400 ``content_policy_violation`` with the
    ``moderation`` object. Failing closed: 503, nothing charged. Passed: the caller adds ``cost``.
    """
    preflight = moderation_preflight(call)
    if preflight is None:
        return None
    model, tokens = preflight
    prompt = prompt.lower()
    forced = call.directives.moderation
    if forced == "unavailable" or DOWN_MARKER in prompt:
        raise MockError(
            "moderation_unavailable", "Inline moderation is temporarily unavailable; the request was not processed."
        )
    check = Moderated(model.id, model.cost(tokens))
    if forced == "flagged" or FLAG_MARKER in prompt:
        with call.charge(check.cost) as charge:
            charge.settle()  # documented: a blocked request still pays for its moderation
        raise MockError(
            "content_policy_violation",
            "Your request was blocked by content moderation.",
            headers=check.headers(flagged=True),
            extra={"moderation": _result(call, model, tokens)},
        )
    return check


def _result(call: Call, model: ModerationModel, tokens: int) -> dict[str, Any]:
    return {
        "id": "modr_" + hashlib.sha256(call.request.body).hexdigest()[:12],
        "model": model.id,
        "results": [
            {
                "flagged": True,
                "categories": {"sexual": True, "violence": False},
                "category_scores": {"sexual": 0.98, "violence": 0.01},
            }
        ],
        "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
    }
