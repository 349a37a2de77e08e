"""The clock port: wall time for records, a monotonic clock for durations."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class SystemClock:
    def now_ms(self) -> int:
        return wall_clock_ms()

    def monotonic(self) -> float:
        return time.perf_counter()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
