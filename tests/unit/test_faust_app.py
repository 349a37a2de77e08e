from types import SimpleNamespace

from streams.faust_app import bound_fetch_wait, new_app
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
