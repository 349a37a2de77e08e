"""Webhook signatures, checked the way each sender signs (HMAC-SHA256, compared in constant time):

- ``stripe``: ``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`` over ``"<t>.<body>"``;
- ``github``: ``X-Hub-Signature-256: sha256=<hex>`` over the body (GitHub signs no time: a resent
  delivery keeps its ``X-GitHub-Delivery`` id, the event id, so the worker decides it once);
- ``slack``: ``X-Slack-Signature: v0=<hex>`` over ``"v0:<ts>:<body>"``, ``X-Slack-Request-Timestamp: <ts>``;
- ``hmac``: ``X-Keel-Signature: sha256=<hex>`` over ``"<ts>.<body>"``, ``X-Keel-Timestamp: <ts>``.

A signed time further than ``tolerance_s`` from now, either way, is refused: a replay, or a clock
that is off. Every refusal says why without repeating a signature or a secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal

Scheme = Literal["stripe", "github", "slack", "hmac"]
MAX_HEADER_CHARS = 2048  # a signature header longer than any sender writes is refused unread


class SignatureRefused(Exception):
    """The request is not signed by the source's secret, or not now."""


def verify(
    scheme: Scheme, headers: Mapping[str, str], body: bytes, secret: bytes, *, now_s: float, tolerance_s: float
) -> None:
    """Returns when ``body`` is signed by ``secret`` within the tolerance; raises ``SignatureRefused``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if scheme == "github":
        _match(_prefixed(_header(lowered, "x-hub-signature-256"), "sha256="), _mac(secret, body))
        return
    if scheme == "stripe":
        fields = _stripe_fields(_header(lowered, "stripe-signature"))
        timestamp = _timestamp(fields.get("t", [""])[0], now_s=now_s, tolerance_s=tolerance_s)
        expected = _mac(secret, timestamp.encode() + b"." + body)
        given = [v.encode("ascii", "replace") for v in fields.get("v1", [])]
        if not any(hmac.compare_digest(expected.encode(), signature) for signature in given):
            raise SignatureRefused("no v1 signature matches")
        return
    if scheme == "slack":
        timestamp = _timestamp(_header(lowered, "x-slack-request-timestamp"), now_s=now_s, tolerance_s=tolerance_s)
        signed = b"v0:" + timestamp.encode() + b":" + body
        _match(_prefixed(_header(lowered, "x-slack-signature"), "v0="), _mac(secret, signed))
        return
    timestamp = _timestamp(_header(lowered, "x-keel-timestamp"), now_s=now_s, tolerance_s=tolerance_s)
    _match(_prefixed(_header(lowered, "x-keel-signature"), "sha256="), _mac(secret, timestamp.encode() + b"." + body))


def sign(scheme: Scheme, body: bytes, secret: bytes, *, now_s: float) -> dict[str, str]:
    """The headers a sender of ``scheme`` would send (tests, and senders written against Keel)."""
    ts = str(int(now_s))
    if scheme == "github":
        return {"X-Hub-Signature-256": "sha256=" + _mac(secret, body)}
    if scheme == "stripe":
        return {"Stripe-Signature": f"t={ts},v1={_mac(secret, ts.encode() + b'.' + body)}"}
    if scheme == "slack":
        signature = _mac(secret, b"v0:" + ts.encode() + b":" + body)
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + signature}
    return {"X-Keel-Timestamp": ts, "X-Keel-Signature": "sha256=" + _mac(secret, ts.encode() + b"." + body)}


def _mac(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise SignatureRefused(f"no {name} header")
    if len(value) > MAX_HEADER_CHARS:
        raise SignatureRefused(f"the {name} header is too long")
    return value.strip()


def _prefixed(value: str, prefix: str) -> str:
    if not value.startswith(prefix):
        raise SignatureRefused(f"the signature does not start with {prefix}")
    return value[len(prefix) :]


def _match(given: str, expected: str) -> None:
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode("ascii", "replace")):
        raise SignatureRefused("the signature does not match")


def _stripe_fields(value: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for part in value.split(","):
        name, _, item = part.strip().partition("=")
        fields.setdefault(name, []).append(item)
    return fields


def _timestamp(value: str, *, now_s: float, tolerance_s: float) -> str:
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise SignatureRefused("the signed time is not a number of seconds")
    if abs(now_s - int(value)) > tolerance_s:
        raise SignatureRefused(f"the signed time is more than {tolerance_s:g} s from now (a replay, or a clock off)")
    return value
