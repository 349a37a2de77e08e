"""A redelivered event re-emits its recorded outcome and never calls the model again."""

from __future__ import annotations

from harness import Stack, assert_exactly_one_outcome_and_audit, model_calls, only_outcome, run_through


async def test_a_duplicate_delivery_is_answered_from_the_store(stack: Stack, sim_url: str, make_event) -> None:
    events = [make_event() for _ in range(5)]
    with stack.running_worker():
        ids, first = await run_through(stack, events={"support.tickets": events})
        assert_exactly_one_outcome_and_audit(ids, first)
        calls = model_calls(sim_url)
        again, second = await run_through(stack, events={"support.tickets": events})  # same ids, same keys
    assert again == ids
    assert model_calls(sim_url) == calls  # not one more paid call
    for event_id in ids:
        [before] = first.outcomes(event_id)
        [after] = second.outcomes(event_id)
        assert after.value == before.value and after.kind == before.kind
        assert second.by_kind["audit"][event_id][0].value == first.by_kind["audit"][event_id][0].value
        assert event_id not in second.by_kind["usage"]  # usage counts calls made, so it is not re-emitted


async def test_the_store_survives_a_worker_restart(stack: Stack, sim_url: str, make_event) -> None:
    events = [make_event() for _ in range(5)]
    with stack.running_worker():
        ids, first = await run_through(stack, events={"support.tickets": events})
        assert_exactly_one_outcome_and_audit(ids, first)
    calls = model_calls(sim_url)
    with stack.running_worker():  # a new process: the store is read back from its topic
        _, second = await run_through(stack, events={"support.tickets": events})
        fresh = [make_event()]
        fresh_ids, third = await run_through(stack, events={"support.tickets": fresh})
    assert [second.outcomes(i)[0].value for i in ids] == [first.outcomes(i)[0].value for i in ids]
    assert model_calls(sim_url) == calls + 1  # only the new event was paid for
    assert third.outcomes(fresh_ids[0])[0].kind == "result"


async def test_a_replayed_dead_letter_is_decided_again(stack: Stack, sim_url: str, make_event) -> None:
    from streams.cli.dlq import Selection, read_dead_letters, replay, select

    event = make_event(payload={"ticket_id": "T-9", "body": "Export broken [[sim:5xx]]"})
    with stack.running_worker():
        ids, first = await run_through(stack, events={"support.tickets": [event]})
        assert only_outcome(first, event.event_id).kind == "dead_letter"
        calls = model_calls(sim_url)
        letters = select(await read_dead_letters(stack.settings, ["support_triage"]), Selection(reason="provider_5xx"))
        assert [d["event_id"] for d in letters] == [event.event_id]
        inputs = {stack.topic("support.tickets")}
        _, second = await run_through(
            stack, action=lambda: replay(stack.settings, letters, input_topics=inputs), expect=ids
        )
    assert model_calls(sim_url) > calls  # decided again, not answered from the store
    [again] = second.outcomes(event.event_id)
    # the same failures again; the circuit breaker may now skip the model before the third attempt
    assert again.kind == "dead_letter" and again.value["reason"] in ("provider_5xx", "circuit_open")
    assert again.value["failed_at"] > letters[0]["failed_at"]
    assert dict(h for h in ((x["key"], x["value"]) for x in again.value["original"]["headers"]))["keel.replay"] == b"1"
