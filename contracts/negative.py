"""The negative suite: provoke every error code the spec documents, on purpose, and check it.

Codes come from the spec (``x-error-codes``), so a code added to the spec is covered at once: a code
without a real trigger below is forced with the mock's ``Prefer: code=...`` on a mock, and reported
"not provokable live" against the live API (never faked). Rejected requests are free.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mockserver.spec import Operation, Spec

from .catalog import TargetCatalog
from .strategies import DomainRequest, data_url, encode_image

PROBE_MODEL_MISSING = "no-such-model-contract-probe"
INVALID_KEY = "sk-invalid-contract-probe-0000"
OVERSIZE_BYTES = 4 * 1024 * 1024 + 64 * 1024  # just above the OpenAI-style 4 MB upload limit
# codes that only a server-side condition produces: a live run cannot (and must not) cause them
SERVER_SIDE = frozenset(
    {
        "rate_limit_exceeded",
        "daily_rpd_limit_exceeded",
        "daily_usd_limit_exceeded",
        "server_error",
        "service_unavailable",
        "insufficient_balance",
        # the inline moderation verdicts: the moderation provider's, never a contract run's to cause
        "content_policy_violation",
        "moderation_unavailable",
    }
)
# codes that depend on facts the public catalogs do not publish (a moderation model's modalities, batch
# support and context length; a stored payment's state): forced on the mock, not provokable live
STATE_DEPENDENT = frozenset(
    {
        "unsupported_input_modality",
        "unsupported_batch_input",
        "context_length_exceeded",
        "payment_already_completed",
        "payment_expired",
    }
)
DOCUMENTED_MODERATION_MODELS = ("omni-moderation-latest", "meta-llama/llama-guard-4-12b")  # inline-moderation page


@dataclass
class NegativeCase:
    operation_id: str
    code: str
    status: int
    request: DomainRequest
    forced: bool  # provoked with the mock's Prefer header rather than a real trigger

    @property
    def name(self) -> str:
        return f"{self.operation_id} {self.status} {self.code}"


def _small_png() -> bytes:
    return encode_image(16, 16, (10, 120, 200), "png")


def _oversize_data_url() -> str:
    return "data:image/png;base64," + base64.b64encode(b"\0" * OVERSIZE_BYTES).decode()


class _Builder:
    """Valid base requests per operation, and the one change that provokes each code."""

    def __init__(self, spec: Spec, catalog: TargetCatalog) -> None:
        self.spec = spec
        self.catalog = catalog
        text = catalog.cheapest()
        self.text_model = text.id if text else "hidream"
        textonly = [m for m in catalog.models.values() if m.max_input_images == 0 and m.unit_prices()]
        self.no_input_model = min(textonly, key=lambda m: (m.cheapest_price, m.id)).id if textonly else None
        edit = catalog.cheapest(inputs=1)
        self.edit_model = edit.id if edit else None

    def base(self, op: Operation) -> DomainRequest:
        op_id, path = op.operation_id, op.path
        auth = "x-api-key" if all(s.kind == "header" for alt in op.security for s in alt) and op.security else "bearer"
        if op_id == "imagesGenerate":
            fields: dict[str, Any] = {"model": self.text_model, "prompt": "contract probe"}
        elif op_id in ("openaiGenerateImage", "openaiGenerateImageApi"):
            fields = {"model": self.text_model, "prompt": "contract probe"}
        elif op_id in ("openaiEditImage", "openaiEditImageAlias"):
            fields = {"prompt": "contract probe", "imageDataUrl": data_url(_small_png())}
            if self.edit_model:
                fields["model"] = self.edit_model
        elif op_id == "legacyGenerateImage":
            fields = {"model": self.text_model, "prompt": "contract probe"}
        elif op_id == "checkMidjourneyStatus":
            fields = {"task_id": "contract-probe-task"}
        elif op_id == "nsfwClassifyImage":
            fields = {"image_urls": [data_url(_small_png())]}
        else:
            fields = {}
        request = DomainRequest(op_id, op.method, path, fields, auth=auth, expect="rejected")
        if op_id == "imagesListModelEndpoints":
            request.path_params = {"modelId": self.text_model}
        if "paymentId" in op.path_params:
            request.path_params = {"paymentId": "pay_contract_probe_unknown"}
        return request

    def trigger(self, op: Operation, code: str) -> DomainRequest | None:
        """The request that provokes ``code`` for real, or None when only the server can cause it."""
        request = self.base(op)
        op_id, f = op.operation_id, request.fields
        generating = op_id in ("imagesGenerate", "openaiGenerateImage", "openaiGenerateImageApi", "legacyGenerateImage")
        edits = op_id in ("openaiEditImage", "openaiEditImageAlias")
        if code == "missing_api_key":
            request.auth = "none"
        elif code == "invalid_api_key":
            request.auth = "invalid"
        elif code == "invalid_content_type":
            request.raw, request.headers = b"prompt=contract+probe", {"content-type": "text/plain"}
        elif code == "invalid_json":
            request.raw, request.headers = b'{"prompt": "contract probe",', {"content-type": "application/json"}
        elif code == "invalid_multipart_body":
            request.raw = b"--xyz\r\nContent-Disposition: form-data\r\n\r\nbroken"
            request.headers = {"content-type": "multipart/form-data; boundary=xyz"}
        elif code == "missing_model" and op_id == "imagesGenerate":
            f.pop("model")
        elif (code, op_id) in (
            ("missing_required_parameter", "checkMidjourneyStatus"),
            ("missing_image_input", "nsfwClassifyImage"),
        ):
            f.clear()
        elif code == "invalid_parameter_value" and op_id == "nsfwClassifyImage":
            f["model"] = "contract-probe-classifier"
        elif code == "invalid_parameter_value" and op_id == "listModerationModels":
            request.query = {"detailed": "sometimes"}
        elif code == "invalid_parameter_value" and op_id == "x402ListEndpoints":
            request.query = {"supported": "sometimes"}
        elif code == "payment_not_found":
            pass  # the base request names an unknown payment
        elif code == "conflicting_moderation_model":
            moderation, model = DOCUMENTED_MODERATION_MODELS
            request.headers = {"moderation": moderation, "moderation-model": model}
        elif code == "empty_moderation_input" and generating:
            request.headers = {"moderation": "true"}
            if op_id == "imagesGenerate":
                f.pop("prompt")
            else:
                f["prompt"] = ""
        elif code == "inline_moderation_requires_api_key":
            request.auth = "none"
            request.headers = {"x-x402": "true", "moderation": "true"}
        elif code == "unsupported_moderation_input" and (edits or op_id == "imagesGenerate"):
            request.headers = {"moderation": "true"}
            if edits:  # a multipart text field that is neither a URL nor a data URL
                request.multipart = True
                f.pop("imageDataUrl")
                f["image"] = "aGVsbG8sIG5vdCBhbiBpbWFnZSBVUkw="
            else:
                f["model"] = self.edit_model or f["model"]
                f["images"] = ["aGVsbG8sIG5vdCBhbiBpbWFnZSBVUkw="]
        elif code == "missing_required_parameter" and (generating or edits):
            f.pop("prompt")
        elif code == "invalid_input_references":
            f["input_references"] = ["not-a-url-nor-a-data-url"]
        elif code == "conflicting_image_inputs":
            f["input_references"] = [data_url(_small_png())]
            f["imageDataUrl"] = data_url(_small_png())
        elif code == "unsupported_stream":
            f["stream"] = True
        elif code == "unsupported_provider_options":
            f["provider"] = {"order": ["contract-probe"]}
        elif code == "invalid_parameter_value":
            if op_id == "legacyListImageModels":
                request.query = {"detailed": "sometimes"}
            elif op_id == "imagesGenerate":
                f["resolution"] = "0x0"
            elif op_id == "legacyGenerateImage":
                f["width"] = 0
            elif generating:
                f["strength"] = 2
            elif edits:
                f["n"] = 0
            else:
                return None
        elif code == "image_input_not_supported" and self.no_input_model and (generating or edits):
            f["model"] = self.no_input_model
            if op_id == "imagesGenerate":
                f["input_references"] = [data_url(_small_png())]
            elif not edits:
                f["imageDataUrl"] = data_url(_small_png())
        elif code == "missing_image_input" and edits:
            request.multipart = True
            f.pop("imageDataUrl")
        elif code == "model_not_found":
            if op_id == "imagesListModelEndpoints":
                request.path_params = {"modelId": PROBE_MODEL_MISSING}
            elif "model" in f or generating or edits:
                f["model"] = PROBE_MODEL_MISSING
            else:
                return None
        elif code == "x402_payment_required" and any(p.name == "x-x402" for p in op.header_params):
            request.auth = "none"
            request.headers = {"x-x402": "true"}
        elif code == "image_input_too_large" and op_id != "imagesGenerate" and (generating or edits):
            f["imageDataUrl"] = _oversize_data_url()
            if op_id == "legacyGenerateImage" or not edits:
                f["model"] = self.edit_model or f.get("model")
        else:
            return None
        return request


def negative_cases(
    spec: Spec, catalog: TargetCatalog, *, mock: bool, operations: set[str] | None = None
) -> list[NegativeCase | tuple[str, str, int]]:
    """Every documented (operation, code): a case to send, or (op, code, status) not provokable live."""
    builder = _Builder(spec, catalog)
    out: list[NegativeCase | tuple[str, str, int]] = []
    for op in spec.operations:
        if operations is not None and op.operation_id not in operations:
            continue
        for code, template in op.errors.items():
            request = None if code in SERVER_SIDE | STATE_DEPENDENT else builder.trigger(op, code)
            if request is not None:
                out.append(NegativeCase(op.operation_id, code, template.status, request, forced=False))
            elif mock:
                forced = builder.base(op)
                forced.headers = {**forced.headers, "Prefer": f"code={code}"}
                out.append(NegativeCase(op.operation_id, code, template.status, forced, forced=True))
            else:
                out.append((op.operation_id, code, template.status))
    return out


AuthHeaders = Callable[[str], dict[str, str]]
