"""Which shard an agent's state lives in: the partition its records land on."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimstream.config import parse_config
from swimstream.routing import shard_for, shard_for_uri
from swimstream.service import shards as shards_module
from swimstream.service.shards import ShardMap
from tests.config.documents import document

SHARDS = 8


def shard_map(partitioner: str = "murmur2") -> ShardMap:
    config = parse_config(
        document(broker={"kind": "kafka", "bootstrap": "x:9092", "partitioner": partitioner}),
        {},
    )
    return ShardMap(config, SHARDS)


ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)


@given(ids)
def test_an_agent_fed_by_its_record_key_is_in_the_partition_of_that_key(vehicle: str) -> None:
    shards = shard_map()
    expected = shard_for(vehicle.encode(), SHARDS, "murmur2")
    assert shards(f"/vehicle/{vehicle}") == expected
    assert shards(f"/vehicle/{vehicle}") == expected  # asked again: remembered, the same


@given(ids)
def test_an_agent_no_keyed_topic_feeds_is_in_the_partition_of_its_uri(tower: str) -> None:
    shards = shard_map("crc32")
    assert shards(f"/tower/{tower}") == shard_for_uri(f"/tower/{tower}", SHARDS, "crc32")


def test_remembered_shards_stay_right_past_the_cache_size(monkeypatch: pytest.MonkeyPatch) -> None:
    small = 16
    monkeypatch.setattr(shards_module, "SHARD_CACHE_SIZE", small)
    shards = shard_map()
    uris = [f"/vehicle/v{n}" for n in range(4 * small)]
    first = [shards(uri) for uri in uris]
    again = [shards(uri) for uri in reversed(uris)]
    assert again == list(reversed(first))
    assert first == [shard_for(uri.rsplit("/", 1)[1].encode(), SHARDS, "murmur2") for uri in uris]
    assert len(set(first)) > 1  # the keys spread over the shards
