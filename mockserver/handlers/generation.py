"""The generation path every image route shares: capabilities, size, price, charge, render.

Routes differ in how they name things (``n`` or ``nImages``, ``size`` or ``resolution``, data URLs
or uploads); they translate, then call :func:`generate`.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from contextlib import nullcontext
from decimal import Decimal
from typing import Any

import orjson

from ..call import Call
from ..catalog import Model
from ..errors import MockError
from ..inputs import SourceImage, bomb, short_digest
from ..messages import Outcome
from ..render import OUTPUT_FORMATS, InvalidImage, OutputFormat, RenderRequest, image_info
from .moderation import moderate

LABEL_CHARS = 80  # a prompt up to this long is shown verbatim in the picture


def prompt_label(prompt: str) -> str:
    """The prompt as the picture shows it (and a signed URL carries it): short prompts verbatim,
    long ones cut, with a digest so that two long prompts never share an image."""
    if len(prompt) <= LABEL_CHARS:
        return prompt
    return f"{prompt[:64]}… #{short_digest(prompt)[:8]}"


def output_format(body: Mapping[str, Any], model: Model) -> OutputFormat:
    """The asked format (``jpg`` is JPEG), or the model's default; refused when the model lacks it."""
    asked = str(body.get("output_format") or model.default_output_format).lower()
    asked = "jpeg" if asked == "jpg" else asked
    if asked not in OUTPUT_FORMATS:
        raise MockError(
            "invalid_parameter_value",
            f"output_format '{asked}' is not supported. Use {', '.join(OUTPUT_FORMATS)}.",
            "output_format",
        )
    model.check_output_format(asked)
    return asked


def generate(
    call: Call,
    model: Model,
    body: Mapping[str, Any],
    sources: list[SourceImage],
    mask: SourceImage | None = None,
    *,
    image_param: str,
    n_param: str = "n",
    size_param: str = "size",
    size: str | None = None,
    edit: bool = False,
) -> Outcome:
    """Check the request against the model, price it, charge it, render it."""
    services = call.services
    services.inputs.check_request([*sources, mask])  # the pixel budget, before anything is decoded
    size = size if size is not None else body.get(size_param)
    if sources and model.max_input_images == 0:
        raise MockError(
            "image_input_not_supported",
            f"Model '{model.id}' does not accept image input; it is text-to-image only.",
            image_param,
        )
    if len(sources) > model.max_input_images:
        raise MockError(
            "invalid_parameter_value",
            f"Model '{model.id}' accepts at most {model.max_input_images} input images, got {len(sources)}.",
            image_param,
        )
    if mask is not None and not model.inpainting:
        raise MockError(
            "image_input_not_supported",
            f"Model '{model.id}' does not support masks (inpainting).",
            "mask" if edit else "maskDataUrl",
        )
    aspect = body.get("aspect_ratio")
    tier: str | None
    if size is not None and str(size) in model.scale_factors and sources:  # `2x`: of the input image
        factor = model.scale_factors[str(size)]
        try:
            source = image_info(sources[0].data)
        except InvalidImage as exc:
            raise MockError(
                "invalid_parameter_value", f"An input image could not be decoded: {exc}.", image_param
            ) from None
        width, height, tier = source.width * factor, source.height * factor, str(size)
    else:
        width, height, tier = model.pixel_size(
            size if size is None else str(size), None if aspect is None else str(aspect), param=size_param
        )
    keep_source_size = edit and size is None and bool(sources)
    model.check_quality(None if body.get("quality") is None else str(body.get("quality")))
    fmt = output_format(body, model)
    count = model.image_count(int(body[n_param]), n_param)
    cost = model.price(width, height, tier) * count
    check = moderate(call, str(body.get("prompt") or ""))  # inline moderation, when asked for
    paid = None
    if call.key is None:  # authentication let an accountless x402 request through
        paid = services.payments.settle(call.request)  # a replay carrying a valid payment proof
        if paid is None:
            raise x402_quote(call, cost)
    total = cost + (check.cost if check else 0)
    asked_seed = body.get("seed")
    seeded = isinstance(asked_seed, int) and model.seed  # only a seeded image can be asked for again
    seed = asked_seed % 2**32 if isinstance(asked_seed, int) and seeded else secrets.randbelow(2**32)
    directives = call.directives
    want_url = body.get("response_format") == "url" and not directives.presign_failure
    label = prompt_label(str(body.get("prompt", "")))
    base_url = call.request.base_url
    renderer, files = services.renderer, services.files
    with nullcontext() if paid else call.charge(total) as charge:
        data: list[dict[str, Any]] = []
        urls: list[str] = []
        shown: list[RenderRequest] = []  # b64 images the journal links to, signed only if someone reads it
        for index in range(count):
            wanted = RenderRequest(model.id, label, width, height, seed, index, fmt)
            if sources:
                try:
                    image = renderer.render_edit(
                        wanted,
                        sources[index % len(sources)].data,
                        None if mask is None else mask.data,
                        keep_source_size=keep_source_size,
                        cache=seeded,
                    )
                except InvalidImage as exc:
                    if bomb(exc):  # Pillow's own guard, past the configured budget
                        raise MockError(
                            "image_input_too_large", f"An input image is too large to decode: {exc}.", image_param
                        ) from None
                    raise MockError(
                        "invalid_parameter_value", f"An input image could not be decoded: {exc}.", image_param
                    ) from None
                if want_url:
                    urls.append(files.url(base_url, wanted, files.store(image)))
                else:
                    data.append({"b64_json": base64.b64encode(image).decode()})
            elif want_url:
                urls.append(files.url(base_url, wanted))
            else:
                # already-encoded JSON: orjson copies it as is instead of scanning 16+ KB of text
                data.append({"b64_json": orjson.Fragment(renderer.render_b64_json(wanted, cache=seeded))})
                shown.append(wanted)
        payload: dict[str, Any] = {
            "created": int(services.clock.now()),
            "data": [{"url": u} for u in urls] if want_url else data,
            "cost": float(total),
        }
        if charge is not None:  # an accountless (x402) request is charged to no balance
            payload |= {"paymentSource": "USD", "remainingBalance": float(charge.remaining)}
    return Outcome(
        call.operation.success_status,
        payload,
        headers=check.headers() if check else {},
        charge=charge,
        model=model.id,
        megapixels=width * height * count / 1e6,
        images=tuple(urls) if not shown else files.lazy_urls(base_url, tuple(shown)),
    )


def x402_quote(call: Call, cost: Decimal) -> MockError:
    """The accountless 402: the operation's documented quote, priced for and bound to this very request."""
    base = call.services.config.public_base_url or call.request.base_url
    payment = call.services.payments.quote(call.request, cost, base)
    return MockError("x402_payment_required", "Payment required to complete this request.", extra={"payment": payment})
