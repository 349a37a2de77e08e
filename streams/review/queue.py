"""The review queue's state in memory: every item read from the review topics and the first decision on
each, from the decisions topic.

Pure: the feed (streams/apps/review/feed.py) adds what it reads, in log order. Pending items are kept per
agent in a list sorted by (created_at_ms, item_id), so that a page is a bisect and a slice (or a lazy
merge over the agents asked for), never a sort of the whole queue: fast on tens of thousands of items.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_right, insort
from collections.abc import Iterable, Iterator
from typing import Literal

from streams.core.review_item import Decision, ItemState, Page, ReviewItem

Recorded = Literal["applied", "refused", "duplicate"]
_Key = tuple[int, str]  # (created_at_ms, item_id): oldest first, ties in a stable order


class ReviewQueue:
    def __init__(self) -> None:
        self._items: dict[str, ReviewItem] = {}
        self._first: dict[str, Decision] = {}  # the first decision per item, in log order
        self._first_offset: dict[str, int] = {}  # where that decision is in its partition
        self._pending: dict[str, list[_Key]] = {}  # per agent, sorted

    def add(self, item: ReviewItem) -> bool:
        """Take an item; False when one with its id is already known (a re-emitted record: the first is
        kept, so its place in the queue does not move)."""
        if item.item_id in self._items:
            return False
        self._items[item.item_id] = item
        pending = self._pending.setdefault(item.agent, [])
        if item.item_id not in self._first:  # a decision can be read before its item (other partition)
            insort(pending, (item.created_at_ms, item.item_id))
        return True

    def record(self, decision: Decision, *, offset: int | None = None) -> Recorded:
        """Take a decision read from the log (``offset``: its position there). The first decision on an
        item is applied; a copy of it is a duplicate; any other later one is refused."""
        first = self._first.get(decision.item_id)
        if first is not None:
            if first.decision_id != decision.decision_id:
                return "refused"
            if offset is not None:
                self._first_offset.setdefault(decision.item_id, offset)
            return "duplicate"
        self._first[decision.item_id] = decision
        if offset is not None:
            self._first_offset[decision.item_id] = offset
        item = self._items.get(decision.item_id)
        if item is not None:
            self._remove_pending(item)
        return "applied"

    def items(self) -> list[ReviewItem]:
        return list(self._items.values())

    def decisions(self) -> list[Decision]:
        """The first decision on each item."""
        return list(self._first.values())

    def waiting(self) -> list[ReviewItem]:
        """Every pending item, of every agent."""
        return [self._items[item_id] for keys in self._pending.values() for _, item_id in keys]

    def get(self, item_id: str) -> ItemState | None:
        item = self._items.get(item_id)
        return None if item is None else ItemState(item, self._first.get(item_id))

    def first_offset(self, item_id: str) -> int | None:
        """The log offset of the item's first decision, when the feed has read it."""
        return self._first_offset.get(item_id)

    def depths(self) -> dict[str, int]:
        """Pending items per agent (agents that ever had one)."""
        return {agent: len(keys) for agent, keys in self._pending.items()}

    def pending(
        self,
        *,
        agents: Iterable[str] | None = None,
        min_age_s: float = 0,
        offset: int = 0,
        limit: int = 50,
        now_ms: int,
    ) -> Page:
        """Pending items of ``agents`` (None: all) created at least ``min_age_s`` before ``now_ms``,
        oldest first, ``limit`` from ``offset``."""
        names = self._pending.keys() if agents is None else agents
        cutoff_ms = now_ms - int(min_age_s * 1000)
        lists = [(keys, bisect_right(keys, cutoff_ms, key=_created)) for keys in map(self._pending.get, names) if keys]
        total = sum(end for _, end in lists)
        offset, limit = max(offset, 0), max(limit, 0)
        if len(lists) == 1:
            keys, end = lists[0]
            window: Iterator[_Key] = iter(keys[min(offset, end) : min(offset + limit, end)])
        else:
            merged = heapq.merge(*(itertools.islice(keys, end) for keys, end in lists))
            window = itertools.islice(merged, offset, offset + limit)
        return Page(tuple(self._items[item_id] for _, item_id in window), total, offset, limit)

    def _remove_pending(self, item: ReviewItem) -> None:
        keys = self._pending[item.agent]
        key = (item.created_at_ms, item.item_id)
        at = bisect_right(keys, key) - 1
        if at >= 0 and keys[at] == key:
            del keys[at]


def _created(key: _Key) -> int:
    return key[0]
