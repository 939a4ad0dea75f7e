"""The older ``/api/*`` routes: legacy generation and the Midjourney status poll."""

from __future__ import annotations

import hashlib

from ..call import Call
from ..messages import Outcome
from ..render import RenderRequest
from .generation import generate, output_format, prompt_label
from .registry import handles


@handles("legacyGenerateImage")
def legacy_generate(call: Call) -> Outcome:
    body, given = call.input.body, call.input.given
    model = call.services.catalog.get(str(body["model"]))
    sources, _ = call.services.inputs.data_url_inputs(body)
    size, size_param = body.get("resolution"), "resolution"
    if size is None and ("width" in given or "height" in given):  # a size the caller chose, defaults filling in
        size, size_param = f"{body['width']}x{body['height']}", "width"
    return generate(
        call, model, body, sources, image_param="imageDataUrl", n_param="nImages", size_param=size_param, size=size
    )


@handles("checkMidjourneyStatus")
def midjourney_status(call: Call) -> Outcome:
    """Every task has finished: its grid is a rendered image, deterministic per task id."""
    task_id = str(call.input.body["task_id"])
    catalog = call.services.catalog
    model = catalog.get(catalog.routes.midjourney_model)
    seed = int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:4], "big")
    width, height, _ = model.pixel_size(None)
    label = prompt_label(f"task {task_id}")
    wanted = RenderRequest(model.id, label, width, height, seed, 0, output_format({}, model))
    url = call.services.files.url(call.request.base_url, wanted)
    return Outcome(
        200,
        {"status": "SUCCESS", "task_id": task_id, "progress": "100%", "imageUrl": url, "failReason": None},
        images=(url,),
    )
