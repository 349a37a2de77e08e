import gc
from types import SimpleNamespace

from streams.faust_app import bound_fetch_wait, freeze_start_up_heap, new_app
from streams.settings import Settings


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
    freeze_start_up_heap(app)
    assert gc.get_freeze_count() == 0
    try:
        await app.on_partitions_assigned.send(set())
        frozen = gc.get_freeze_count()
        assert frozen > 0
        gc.unfreeze()
        await app.on_partitions_assigned.send(set())  # a later rebalance: nothing more is frozen
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
