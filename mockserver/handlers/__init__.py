"""Operation handlers, grouped by API family; importing this package registers them all."""

from . import catalogs, images, legacy, moderation, old_catalog, openai, x402
from .registry import HANDLERS, OperationHandler, handles

__all__ = [
    "HANDLERS",
    "OperationHandler",
    "catalogs",
    "handles",
    "images",
    "legacy",
    "moderation",
    "old_catalog",
    "openai",
    "x402",
]
