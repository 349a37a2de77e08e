"""Reading HTTP answer headers the connectors share: how long a server asks to be left alone."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from email.utils import parsedate_to_datetime


def parse_retry_after(headers: Mapping[str, str], *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP-date); else None."""
    lowered = {key.lower(): value for key, value in headers.items()}
    millis = non_negative(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = non_negative(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def non_negative(value: str | None) -> float | None:
    """A header's number when it is a finite one of 0 or more; else None."""
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def whole(value: str | None) -> int | None:
    """A header's whole number of 0 or more (a fraction is cut off); else None."""
    number = non_negative(value)
    return int(number) if number is not None else None
