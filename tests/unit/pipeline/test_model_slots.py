"""Model slots: at most max_concurrent calls to a model at once, the others queued in arrival order,
each wait bounded by its caller; the limit is the lowest of the provider's and the chain entries'."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from fakes import ManualClock, settled

from streams.agent.definition import Agent, ModelSpec
from streams.apps.wiring import build_slots, with_provider
from streams.core.settings import Settings
from streams.pipeline.model_slots import NO_SLOTS, ModelSlots, Slot, slot_limits

KEY = "local/smollm2"


@dataclass
class RecordingSlotObserver:
    waits: list[tuple[str, float]] = field(default_factory=list)
    give_ups: list[tuple[str, float]] = field(default_factory=list)

    def waited(self, model_key: str, seconds: float) -> None:
        self.waits.append((model_key, seconds))

    def gave_up(self, model_key: str, seconds: float) -> None:
        self.give_ups.append((model_key, seconds))


def make_slots(clock: ManualClock, limit: int = 1) -> tuple[ModelSlots, RecordingSlotObserver]:
    slots = ModelSlots({KEY: limit}, clock)
    slots.observer = observer = RecordingSlotObserver()
    return slots, observer


async def taken(slots: ModelSlots, *, max_wait_s: float = 300.0) -> Slot:
    slot = await slots.acquire(KEY, max_wait_s=max_wait_s)
    assert slot is not None
    return slot


def spec(provider: str, model: str, max_concurrent: int | None = None) -> ModelSpec:
    return ModelSpec(provider=provider, model=model, max_concurrent=max_concurrent)


def test_a_model_s_limit_is_the_lowest_its_provider_or_any_chain_entry_declares() -> None:
    providers = {"local": 1, "vllm": 8, "openai": None}
    specs = [
        spec("local", "smollm2", 4),  # an agent cannot raise what its provider's server serves
        spec("vllm", "llama", 3),
        spec("vllm", "llama", 5),  # another agent's entry of the same model: the lowest wins
        spec("vllm", "qwen"),
        spec("openai", "gpt", 2),
        spec("openai", "gpt-mini"),
    ]
    assert slot_limits(providers, specs) == {"local/smollm2": 1, "vllm/llama": 3, "vllm/qwen": 8, "openai/gpt": 2}


async def test_a_second_call_waits_until_the_first_gives_its_slot_back() -> None:
    clock = ManualClock()
    slots, observer = make_slots(clock)
    first = await taken(slots)
    second = asyncio.create_task(taken(slots))
    await settled(lambda: slots.waiting(KEY) == 1)
    clock.advance(3.0)  # the first call is still out
    await settled(lambda: clock.sleeping == 1)
    assert not second.done()
    slots.release(first)
    await settled(second.done)
    got = second.result()
    assert got.waited_s == 3.0 and first.waited_s == 0.0
    assert observer.waits == [(KEY, 0.0), (KEY, 3.0)] and observer.give_ups == []
    assert clock.sleeping == 0  # the wait's timer is gone with it


async def test_queued_calls_get_their_slots_in_arrival_order() -> None:
    slots, _ = make_slots(ManualClock(), limit=2)
    held = [await taken(slots), await taken(slots)]
    order: list[int] = []

    async def call(n: int) -> None:
        slot = await taken(slots)
        order.append(n)
        slots.release(slot)

    waiting = []
    for n in range(3):
        waiting.append(asyncio.create_task(call(n)))
        await settled(lambda n=n: slots.waiting(KEY) == n + 1)  # type: ignore[misc]
    assert not await taken_now(slots)  # a newcomer queues behind them (and, free to wait 0 s, gives up)
    for slot in held:
        slots.release(slot)
    await settled(lambda: all(task.done() for task in waiting))
    assert order == [0, 1, 2]
    assert [await taken_now(slots), await taken_now(slots)] == [True, True]  # both slots are free again


async def taken_now(slots: ModelSlots) -> bool:
    slot = await slots.acquire(KEY, max_wait_s=0.0)
    if slot is not None:
        slots.release(slot)
    return slot is not None


async def test_a_call_that_gets_no_slot_within_its_wait_gives_up_and_leaves_the_queue() -> None:
    clock = ManualClock()
    slots, observer = make_slots(clock)
    first = await taken(slots)
    second = asyncio.create_task(slots.acquire(KEY, max_wait_s=5.0))
    await settled(lambda: clock.sleeping == 1)
    clock.advance(5.0)
    assert await second is None
    assert observer.give_ups == [(KEY, 5.0)] and slots.waiting(KEY) == 0
    slots.release(first)
    assert await taken_now(slots)  # the slot the first gave back is free, not promised to the one that left


async def test_a_waiter_cancelled_as_its_turn_comes_hands_the_slot_on() -> None:
    slots, _ = make_slots(ManualClock())
    first = await taken(slots)
    second = asyncio.create_task(taken(slots))
    third = asyncio.create_task(taken(slots))
    await settled(lambda: slots.waiting(KEY) == 2)
    slots.release(first)  # the second's turn: handed over before it runs again
    second.cancel()
    await settled(third.done)  # not left waiting for a slot nobody holds
    got = third.result()
    assert second.cancelled() and got.model_key == KEY
    slots.release(got)
    assert await taken_now(slots)


async def test_a_model_without_a_limit_never_waits() -> None:
    clock = ManualClock()
    slots, observer = make_slots(clock)
    unlimited = [await slots.acquire("sim/other", max_wait_s=0.0) for _ in range(50)]
    assert all(s is not None and s.waited_s == 0.0 and not s.limited for s in unlimited)
    assert slots.limit("sim/other") is None and observer.waits == []
    assert NO_SLOTS.limit(KEY) is None


def test_the_worker_limits_the_embedded_model_to_one_call_at_a_time_unless_told_otherwise(
    agents: dict[str, Agent], monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = list(agents.values())  # both use local/smollm2-135m-instruct: they share its one slot
    assert {spec.key for a in shipped for spec in a.definition.model_chain} == {"local/smollm2-135m-instruct"}
    assert build_slots(Settings(), shipped, ManualClock()).limit("local/smollm2-135m-instruct") == 1
    monkeypatch.setenv("KEEL_PROVIDERS__LOCAL__BASE_URL", "http://127.0.0.1:8081/v1")
    monkeypatch.setenv("KEEL_PROVIDERS__LOCAL__MAX_CONCURRENT", "2")  # a server started with more slots
    assert build_slots(Settings(), shipped, ManualClock()).limit("local/smollm2-135m-instruct") == 2
    on_sim = [with_provider(a, "sim") for a in shipped]
    assert build_slots(Settings(), on_sim, ManualClock()).limit("sim/smollm2-135m-instruct") is None
