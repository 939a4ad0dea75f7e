"""The catalogs: ``/api/v1/images/models``, ``.../{modelId}/endpoints`` and the legacy ``/api/v1/image-models``.

Their bodies never change while an instance lives: the catalog encodes them once.
"""

from __future__ import annotations

from ..call import Call
from ..errors import MockError
from ..messages import Outcome
from .registry import handles

LEGACY_CACHE_CONTROL = "public, max-age=60"


@handles("imagesListModels")
def list_models(call: Call) -> Outcome:
    return Outcome(200, raw=call.services.catalog.encoded["models"])


@handles("legacyListImageModels")
def legacy_list_models(call: Call) -> Outcome:
    which = "legacy_detailed" if call.input.query["detailed"] else "legacy_basic"
    return Outcome(200, raw=call.services.catalog.encoded[which], headers={"cache-control": LEGACY_CACHE_CONTROL})


@handles("imagesListModelEndpoints")
def model_endpoints(call: Call) -> Outcome:
    model_id = call.params["modelId"]
    if model_id not in call.services.catalog.by_id:
        raise MockError("model_not_found", f"Model '{model_id}' not found.", "modelId")
    return Outcome(200, call.services.catalog.endpoints_body(model_id))
