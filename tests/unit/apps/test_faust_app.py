import gc
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from streams.apps import faust_app
from streams.apps.faust_app import bound_fetch_wait, new_app
from streams.core.settings import Settings


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """A consuming app freezes the heap at its first assignment: undone after each test."""
    yield
    gc.unfreeze()


async def test_the_fetch_wait_is_bounded_once_partitions_are_assigned(tmp_path) -> None:
    app = new_app(Settings(state_dir=tmp_path, fetch_max_wait_ms=40), app_id="keel-test", web_port=0)
    fetcher = SimpleNamespace(_fetch_max_wait_ms=1500)  # what faust gives the aiokafka consumer it starts
    app.consumer._thread._consumer = SimpleNamespace(_fetcher=fetcher)
    await app.on_partitions_assigned.send(set())
    assert fetcher._fetch_max_wait_ms == 40


def test_a_consumer_not_built_the_way_faust_does_is_left_alone() -> None:
    assert not bound_fetch_wait(SimpleNamespace(_thread=SimpleNamespace(_consumer=None)), 40)
    assert not bound_fetch_wait(SimpleNamespace(), 40)


async def test_the_start_up_heap_is_frozen_at_the_first_assignment_only(tmp_path) -> None:
    app = new_app(Settings(state_dir=tmp_path), app_id="keel-test", web_port=0)
    assert gc.get_freeze_count() == 0
    await app.on_partitions_assigned.send(set())
    frozen = gc.get_freeze_count()
    assert frozen > 0
    later = [[] for _ in range(1000)]  # alive after the first freeze
    await app.on_partitions_assigned.send(set())  # a later rebalance: nothing more is frozen
    assert gc.get_freeze_count() == frozen and later


def test_an_app_that_does_not_consume_starts_no_kafka_client(tmp_path) -> None:
    app = new_app(Settings(state_dir=tmp_path), app_id="keel-test", web_port=0, consumes=False)
    services = list(app.on_init_dependencies())
    assert app.consumer not in services and app.producer not in services
    consuming = new_app(Settings(state_dir=tmp_path), app_id="keel-test-2", web_port=0)
    assert consuming.consumer in list(consuming.on_init_dependencies())


async def test_a_crashed_app_exits_70(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[tuple[str, BaseException]] = []
    monkeypatch.setattr(faust_app, "exit_for_restart", lambda what, exc: exits.append((what, exc)))
    app = new_app(Settings(state_dir=tmp_path), app_id="keel-test", web_port=0, consumes=False)
    faust_app.exit_on_crash(app)
    failure = RuntimeError("an agent failed")
    await app.crash(failure)
    assert exits == [("the faust app crashed", failure)]
