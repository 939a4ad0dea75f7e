"""Accountless x402 payments, simulated: a quote is bound to one request, paid by a proof, used once.

The rails a quote advertises and how long it lives are catalog data (``x402`` in catalog.yaml); which
routes accept quotes is spec data (operations documenting ``x402_payment_required``; those marked
``x-x402-public`` are the public matrix). Nothing here moves money: an accountless request is paid
for by its quote, never by a key's balance.

A quote is paid in one of the documented ways:

- ``POST /api/x402/complete/{paymentId}`` with an ``X-PAYMENT`` proof (any non-empty value in the
  mock), which replays the stored request;
- the original request replayed with ``X-PAYMENT: <paymentId>`` (raw, or base64 JSON carrying
  ``paymentId``) or ``Authorization: L402 <l402Token>:<preimage>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from .errors import MockError
from .messages import MockRequest, MockResponse
from .state import Clock

X402_PARAMETER = "x-x402"
USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"


@dataclass
class Quote:
    """One accountless quote: the request it is bound to, its price and its state."""

    payment_id: str
    method: str
    path: str
    body: bytes
    content_type: str
    amount: Decimal
    created: float
    expires: float
    l402_token: str
    pay_to: str
    payment: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"  # pending -> processing -> completed

    def binds(self, request: MockRequest) -> bool:
        return (request.method.upper(), request.path, request.body) == (self.method, self.path, self.body)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def x402_matrix(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The accountless endpoint matrix of a spec document: every operation documenting a quote."""
    rows: list[dict[str, Any]] = []
    params = document.get("components", {}).get("parameters", {})
    for path, item in document.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            names = []
            for p in op.get("parameters", []):
                ref = p.get("$ref", "")
                resolved = params.get(ref.rsplit("/", 1)[-1], {}) if ref else p
                names.append(str(resolved.get("name", "")).lower())
            if X402_PARAMETER not in names:
                continue
            public = bool(op.get("x-x402-public"))
            rows.append(
                {
                    "endpoint": path,
                    "method": method.upper(),
                    "supported": public,
                    "streaming": "unsupported",
                    "async": False,
                    "quoteType": "deterministic",
                    "notes": "JSON requests."
                    if public
                    else "Same handler as a public route; not in the public matrix.",
                }
            )
    return rows


class Payments:
    """The quotes of one mock instance (reset with the instance)."""

    def __init__(self, clock: Clock, rails: Mapping[str, Any], matrix: list[dict[str, Any]]) -> None:
        self.clock = clock
        self.schemes: tuple[str, ...] = tuple(rails.get("schemes", ("nano",)))
        self.ttl = float(rails.get("quote_ttl_seconds", 900))
        self.poll_after = int(rails.get("poll_after_seconds", 5))
        self.usd_per_xno = Decimal(str(rails.get("usd_per_xno", 1)))
        self.sats_per_usd = Decimal(str(rails.get("sats_per_usd", 1000)))
        self.discount = Decimal(str(rails.get("lightning_discount", 0)))
        self.matrix = [row | {"schemes": list(self.schemes)} for row in matrix]
        self.replay: Callable[[MockRequest], MockResponse] | None = None  # set by the engine
        self._quotes: dict[str, Quote] = {}
        self._by_token: dict[str, str] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._quotes.clear()
            self._by_token.clear()

    # -- quoting ------------------------------------------------------------------------------
    def quote(self, request: MockRequest, cost: Decimal, base_url: str) -> dict[str, Any]:
        """Store a quote for ``request`` and answer the documented ``payment`` object."""
        now = self.clock.now()
        request_hash = hashlib.sha256(request.body).hexdigest()
        with self._lock:
            seq = len(self._quotes)
            digest = hashlib.sha256(f"{seq}:{request.method.upper()}:{request.path}:".encode() + request.body)
            payment_id = "pay_" + digest.hexdigest()[:24]
            token = base64.urlsafe_b64encode(hashlib.sha256(payment_id.encode()).digest()[:18]).decode()
            quote = Quote(
                payment_id,
                request.method.upper(),
                request.path,
                request.body,
                request.headers.get("content-type", "application/json"),
                cost,
                now,
                now + self.ttl,
                token,
                "nano_1" + hashlib.sha256(payment_id.encode()).hexdigest()[:59],
            )
            quote.payment = self._payment(quote, request_hash, base_url)
            self._quotes[payment_id] = quote
            self._by_token[token] = payment_id
        return quote.payment

    def _payment(self, quote: Quote, request_hash: str, base_url: str) -> dict[str, Any]:
        pid, usd = quote.payment_id, quote.amount
        status_url, complete_url = f"{base_url}/api/x402/status/{pid}", f"{base_url}/api/x402/complete/{pid}"
        accepted: list[dict[str, Any]] = []
        for scheme in self.schemes:
            if scheme == "nano":
                xno = usd / self.usd_per_xno
                accepted.append(
                    {
                        "scheme": "nano",
                        "protocolScheme": "nano",
                        "network": "nano-mainnet",
                        "amount": str(int(xno * Decimal(10) ** 30)),
                        "amountFormatted": f"{xno:.8f} XNO",
                        "amountUsd": f"{usd:.4f}",
                        "payTo": quote.pay_to,
                        "paymentId": pid,
                        "statusUrl": status_url,
                        "completeUrl": complete_url,
                    }
                )
            elif scheme == "x402-exact":
                accepted.append(
                    {
                        "scheme": "x402-exact",
                        "protocolScheme": "exact",
                        "network": "base",
                        "amount": str(int(usd * 1_000_000)),
                        "amountFormatted": f"{usd:.6f} USDC",
                        "amountUsd": f"{usd:.4f}",
                        "payTo": "0x" + hashlib.sha256(pid.encode()).hexdigest()[:40],
                        "asset": USDC_BASE,
                        "paymentId": pid,
                        "expiresAt": _iso(quote.expires),
                    }
                )
            elif scheme == "lightning-l402":
                discounted = usd * (1 - self.discount)
                sats = max(1, int((discounted * self.sats_per_usd).to_integral_value()))
                invoice = "lnbc" + hashlib.sha256(("invoice" + pid).encode()).hexdigest()[:48]
                accepted.append(
                    {
                        "scheme": "lightning-l402",
                        "protocolScheme": "lightning-l402",
                        "network": "bitcoin-lightning",
                        "amount": str(sats),
                        "amountFormatted": f"{sats} sats",
                        "amountUsd": f"{discounted:.4f}",
                        "payTo": invoice,
                        "invoice": invoice,
                        "paymentHash": hashlib.sha256(invoice.encode()).hexdigest(),
                        "l402Token": quote.l402_token,
                        "discountRate": float(self.discount),
                        "undiscountedAmountUsd": f"{usd:.4f}",
                    }
                )
        return {
            "version": 1,
            "paymentId": pid,
            "requestHash": f"sha256:{request_hash}",
            "expiresAt": _iso(quote.expires),
            "amountUsd": f"{usd:.4f}",
            "statusUrl": status_url,
            "completeUrl": complete_url,
            "accepted": accepted,
        }

    # -- paying -------------------------------------------------------------------------------
    def settle(self, request: MockRequest) -> Quote | None:
        """The quote a replayed request pays with (and uses up), or None: no valid proof for it."""
        payment_id = self._proof_id(request.headers)
        if payment_id is None:
            return None
        with self._lock:
            quote = self._quotes.get(payment_id)
            if quote is None or quote.status == "completed" or not quote.binds(request):
                return None
            if self.clock.now() > quote.expires:
                return None
            quote.status = "completed"
            return quote

    def _proof_id(self, headers: Mapping[str, str]) -> str | None:
        proof = headers.get("x-payment", "").strip()
        if proof:
            if proof.startswith("pay_"):
                return proof
            try:
                decoded = orjson.loads(base64.b64decode(proof, validate=True))
            except (binascii.Error, ValueError, orjson.JSONDecodeError):
                return None
            value = decoded.get("paymentId") if isinstance(decoded, dict) else None
            return value if isinstance(value, str) else None
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "l402" and ":" in credentials:
            return self._by_token.get(credentials.split(":", 1)[0].strip())
        return None

    def get(self, payment_id: str) -> Quote:
        quote = self._quotes.get(payment_id)
        if quote is None:
            raise MockError("payment_not_found", f"Payment not found: {payment_id}", "paymentId")
        return quote

    def state(self, quote: Quote) -> str:
        if quote.status == "pending" and self.clock.now() > quote.expires:
            return "expired"
        return quote.status

    def status_body(self, quote: Quote) -> dict[str, Any]:
        state = self.state(quote)
        amount = f"{quote.amount:.4f}"
        received = amount if state == "completed" else "0"
        return {
            "paymentId": quote.payment_id,
            "status": state,
            "amountRequired": amount,
            "amountReceived": received,
            "amountRemaining": "0" if state == "completed" else amount,
            "payTo": quote.pay_to,
            "expiresAt": int(quote.expires),
            "pollAfterSeconds": self.poll_after,
            "readyToComplete": False,
        }

    def complete(self, payment_id: str, proof: str | None, base_url: str) -> MockResponse:
        """Pay ``payment_id`` with ``proof`` and replay its stored request (the documented checks first)."""
        quote = self.get(payment_id)
        with self._lock:
            state = self.state(quote)
            if state in ("completed", "processing"):
                raise MockError("payment_already_completed", f"Payment {payment_id} was already {state}.", "paymentId")
            if state == "expired":
                raise MockError("payment_expired", f"Payment {payment_id} expired.", "paymentId")
            if not proof:
                raise MockError(
                    "x402_payment_required",
                    "Payment not received yet. Pay a quoted option, then call completeUrl again.",
                    extra={"payment": quote.payment},
                )
        replayed = MockRequest(
            quote.method,
            quote.path,
            headers={"content-type": quote.content_type, "x-payment": payment_id},
            body=quote.body,
            base_url=base_url,
        )
        assert self.replay is not None, "the engine sets Payments.replay"
        response = self.replay(replayed)  # settle() marks the quote completed
        if not 200 <= response.status < 300:
            raise MockError("server_error", f"The paid request failed on replay with HTTP {response.status}.")
        return response
