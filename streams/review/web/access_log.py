"""Who did what in the review UI and API: one structured line per login, logout, failed login and
decision attempt, on the logger ``keel.review.access``.

Each line is a JSON object (``{"event": "decision", "user": "bob", ...}``) so a log shipper can index it
as is. Accepted decisions are also audited by the review service on the audit topic; this log adds the
attempts it refused and everything around logging in, which never reaches Kafka.
"""

from __future__ import annotations

import logging

import orjson

ACCESS_LOGGER = "keel.review.access"


class AccessLog:
    def __init__(self) -> None:
        self.logger = logging.getLogger(ACCESS_LOGGER)
        if self.logger.level == logging.NOTSET:  # an audit trail is not to be silenced by a WARNING root
            self.logger.setLevel(logging.INFO)

    def record(self, event: str, **fields: str | int | float | bool | None) -> None:
        """Write one line; fields that are None are left out."""
        line = {"event": event, **{k: v for k, v in fields.items() if v is not None}}
        self.logger.info(orjson.dumps(line).decode())
