"""A provider that keeps failing opens its circuit, and the worker shows it on its web server."""

from __future__ import annotations

from pathlib import Path

from harness import free_port, get_when_up, run_through, worker_stack

from streams.cli.local_stack import simulator_process


async def test_a_failing_provider_opens_its_circuit_and_it_is_observable(
    kafka_bootstrap: str, tmp_path: Path, make_event
) -> None:
    port = free_port()
    with (
        simulator_process(tmp_path, "--seed", "2") as sim_url,
        worker_stack(kafka_bootstrap, tmp_path, provider="sim", base_url=sim_url, web_port=port) as stack,
    ):
        # one key: the events run one after another, so the failure count is exact
        failing = [
            make_event(business_key="CUST-1", payload={"ticket_id": f"T-{i}", "body": "down [[sim:5xx]]"})
            for i in range(3)
        ]
        ids, tally = await run_through(stack, events={"support.tickets": failing})
        reasons = sorted(tally.outcomes(i)[0].value["reason"] for i in ids)
        # 3 attempts for the first event, the circuit opens at the fifth failure: later events skip the model
        assert reasons == ["circuit_open", "circuit_open", "provider_5xx"]
        attempts = sum(len(tally.by_kind["usage"].get(i, ())) for i in ids)
        assert attempts == 5
        response = await get_when_up(f"http://127.0.0.1:{port}/keel/circuits/")
        [circuit] = response.json()["circuits"]
        assert circuit["key"] == "sim/smollm2-135m-instruct" and circuit["state"] == "open"
        assert circuit["consecutive_failures"] >= 5
