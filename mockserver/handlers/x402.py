"""The accountless x402 follow-ups: the endpoint matrix, a quote's status, and its completion.

Quotes are made (and paid replays settled) on the generation routes, see ``generation.py``; the
state lives in ``payments.py``.
"""

from __future__ import annotations

from ..call import Call
from ..errors import MockError
from ..messages import Outcome
from .registry import handles

MATRIX_VERSION = "2026-06-03"


@handles("x402ListEndpoints")
def endpoints(call: Call) -> Outcome:
    supported = call.input.query.get("supported", "true")
    if supported not in ("true", "all"):  # the schema's enum already refused others; kept for direct calls
        raise MockError("invalid_parameter_value", "supported must be true or all.", "supported")
    matrix = call.services.payments.matrix
    data = matrix if supported == "all" else [row for row in matrix if row["supported"]]
    meta = {"count": len(data), "totalCount": len(matrix), "unsupportedIncluded": supported == "all"}
    return Outcome(200, {"object": "x402.endpoint_support.list", "version": MATRIX_VERSION, "data": data, "meta": meta})


@handles("x402PaymentStatus")
def status(call: Call) -> Outcome:
    payments = call.services.payments
    body = payments.status_body(payments.get(call.params["paymentId"]))
    wait = str(payments.poll_after)
    return Outcome(200, body, headers={"retry-after": wait, "x-poll-after": wait})


@handles("x402CompletePayment")
def complete(call: Call) -> Outcome:
    payments = call.services.payments
    base = call.services.config.public_base_url or call.request.base_url
    replayed = payments.complete(call.params["paymentId"], call.request.headers.get("x-payment"), base)
    return Outcome(200, raw=replayed.body, images=())
