"""The CRM's customers: those of the shipped support-ticket samples (deploy/samples/support_triage.jsonl),
each with the account facts a CRM holds and a ticket does not (status, since when, lifetime value,
open tickets), derived from the customer id so every run sees the same ones."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from streams.core.settings import REPO_ROOT

SHIPPED_SAMPLES = REPO_ROOT / "deploy" / "samples" / "support_triage.jsonl"

_STATUSES = ("active", "active", "active", "past_due", "suspended")


class Customers:
    def __init__(self, customers: Iterable[Mapping[str, Any]]) -> None:
        self._by_id = {str(c["id"]): dict(c) for c in customers}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, customer_id: str) -> dict[str, Any] | None:
        return self._by_id.get(customer_id)

    def put(self, customer: Mapping[str, Any]) -> None:
        self._by_id[str(customer["id"])] = dict(customer)

    @classmethod
    def from_samples(cls, path: Path = SHIPPED_SAMPLES) -> Customers:
        """One customer per distinct customer of the samples file, with its CRM facts."""
        found: dict[str, dict[str, Any]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            customer = orjson.loads(line).get("payload", {}).get("customer") if line.strip() else None
            if isinstance(customer, dict) and isinstance(customer.get("id"), str):
                found.setdefault(customer["id"], account(customer))
        return cls(found.values())


def account(customer: Mapping[str, Any]) -> dict[str, Any]:
    """``customer`` (id, name, email, plan) with the facts a CRM adds."""
    seed = int.from_bytes(hashlib.sha256(str(customer["id"]).encode()).digest()[:8], "big")
    return {
        **customer,
        "account_status": _STATUSES[seed % len(_STATUSES)],
        "customer_since": f"{2015 + seed % 11}-{1 + seed // 11 % 12:02d}-01",
        "lifetime_value_usd": round((seed % 500_000) / 100, 2),
        "open_tickets": seed // 7 % 4,
    }
