"""The tool journal: how far an event's tool loop got, kept so that a redelivery goes on from there.

A tool call can change a business system (open a ticket), and a model turn costs money, so neither may
be done twice for one event. After every model turn that asks for tools and after every tool result,
the loop saves the journal (the worker keeps it in the agent's outcome store, beside the event's entry:
streams/kafka/outcome_store.py) and waits for it to be written before it goes on. An event delivered
again after a crash or a rebalance reads it back: the turns it holds are not asked again, the calls
whose results it holds are not made again, and a call it holds without a result is made again with
the same idempotency key (streams/pipeline/tools.py), so a system that honours the key does it once.

``generation`` says which decision of the event the journal belongs to: 0 for the event as it arrived
(and the retry tiers and parking that continue it), the pass number of a reviewer's re-run or an
engineer's replay, which decide the event anew. ``pass_number`` says which pass made the ``attempts``
held: a redelivery of that pass records them with its outcome; a later pass (a retry tier) has them
already, from the record it waits in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import orjson
from pydantic import TypeAdapter, ValidationError

from streams.core.domain import Attempt
from streams.core.ports.model import ChatMessage

_VERSION = 1


@dataclass(frozen=True, slots=True)
class ToolJournal:
    generation: int
    pass_number: int
    steps: int  # model turns whose tool calls were made (or are being made)
    tail: tuple[ChatMessage, ...]  # the conversation after the prompt: tool-call turns and their results
    attempts: tuple[Attempt, ...]  # of ``pass_number``, model and tool attempts alike


class JournalStore(Protocol):
    """Where one event's journal is kept (the worker's outcome store, keyed by the event)."""

    async def load(self) -> bytes | None: ...

    async def save(self, blob: bytes) -> None:
        """Returns once the journal is durably written."""
        ...


_ADAPTER = TypeAdapter(ToolJournal)


def encode_journal(journal: ToolJournal) -> bytes:
    return orjson.dumps({"v": _VERSION, "journal": _ADAPTER.dump_python(journal, mode="json")})


def decode_journal(blob: bytes) -> ToolJournal | None:
    """None for a blob this version did not write: the event's tool loop then starts from the beginning
    (its write tools' idempotency keys still protect what was done)."""
    try:
        document = orjson.loads(blob)
        if not isinstance(document, dict) or document.get("v") != _VERSION:
            return None
        return _ADAPTER.validate_python(document.get("journal"))
    except (orjson.JSONDecodeError, ValidationError):
        return None


class MemoryJournal:
    """A journal that lasts as long as the event's run: for callers with no outcome store (tests, a
    benchmark); a worker always passes its store's."""

    def __init__(self) -> None:
        self.blob: bytes | None = None

    async def load(self) -> bytes | None:
        return self.blob

    async def save(self, blob: bytes) -> None:
        self.blob = blob
