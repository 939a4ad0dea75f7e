"""The old catalog in the shape public clients read: ``GET /api/models`` and ``GET /api/models/image``.

The body (``models.image`` keyed by model ID) never changes while an instance lives: encoded once.
"""

from __future__ import annotations

from ..call import Call
from ..messages import Outcome
from .registry import handles


@handles("legacyListModels", "legacyListModelsImage")
def old_catalog(call: Call) -> Outcome:
    return Outcome(200, raw=call.services.catalog.encoded["old"])
