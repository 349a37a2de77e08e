import random

from aiokafka.partitioner import DefaultPartitioner

from streams.kafka.producer import KeyHashCache


def test_keyed_records_land_where_the_default_partitioner_puts_them() -> None:
    cache, default = KeyHashCache(size=8), DefaultPartitioner()
    keys = [f"event-{i}".encode() for i in range(50)]
    for key in [*keys, *keys, *reversed(keys)]:  # new, cached and evicted keys alike
        for count in (1, 3, 4, 12):
            partitions = list(range(count))
            assert cache(key, partitions, partitions[:1]) == default(key, partitions, partitions[:1])


def test_the_cache_stays_bounded() -> None:
    cache = KeyHashCache(size=8)
    for i in range(100):
        cache(str(i).encode(), [0, 1, 2], [0, 1, 2])
    assert len(cache._hashes) <= 8


def test_a_keyless_record_goes_to_an_available_partition() -> None:
    random.seed(1)
    assert {KeyHashCache()(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
