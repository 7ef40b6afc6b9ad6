import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimstream.routing import PARTITIONERS, Partitioner, murmur2, shard_for, shard_for_uri

# Apache Kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java (testMurmur2)
KAFKA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

# librdkafka, src/rdmurmur2.c unit test ("Java murmur2" results, as unsigned 32-bit)
LIBRDKAFKA_MURMUR2 = {
    b"kafka": 0xD067CF64,
    b"giberish123456789": 0x8F552B0C,
    b"1234": 0x9FC97B14,
    b"234": 0xE7C009CA,
    b"34": 0x873930DA,
    b"4": 0x5A4B5CA1,
    b"PreAmbleWillBeRemoved,ThePrePartThatIs": 0x78424F1C,
    b"reAmbleWillBeRemoved,ThePrePartThatIs": 0x4A62B377,
    b"eAmbleWillBeRemoved,ThePrePartThatIs": 0xE0E4E09E,
    b"AmbleWillBeRemoved,ThePrePartThatIs": 0x62B8B43F,
    b"": 0x106E08D9,
}

# librdkafka, tests/0048-partitioner.c: key -> hash whose value modulo 17 is the partition
LIBRDKAFKA_PARTITIONER = {
    "crc32": {
        b"23456": 0xB1B451D7,
        b"this is another string with more length to it perhaps": 0xB0150DF7,
        b"hejsan": 0xD077037E,
    },
    "murmur2": {
        b"": 0x106E08D9,
        b"23456": 0x058D780F,
        b"this is another string with more length to it perhaps": 0x4F7703DA,
        b"hejsan": 0x5EC19395,
    },
}

# kafka-python, test/test_partitioner.py (Murmur2Partitioner over 1000 partitions)
KAFKA_PYTHON_1000 = {b"": 681, b"a": 524, b"ab": 434, b"abc": 107, b"123456789": 566, b"\x00 ": 742}


@pytest.mark.parametrize(("key", "expected"), KAFKA_MURMUR2.items())
def test_murmur2_matches_the_java_client(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


@pytest.mark.parametrize(("key", "expected"), LIBRDKAFKA_MURMUR2.items())
def test_murmur2_matches_librdkafka(key: bytes, expected: int) -> None:
    assert murmur2(key) & 0xFFFFFFFF == expected


@pytest.mark.parametrize(
    ("partitioner", "key", "hashed"),
    [
        (name, key, hashed)
        for name, cases in LIBRDKAFKA_PARTITIONER.items()
        for key, hashed in cases.items()
    ],
)
def test_shard_matches_librdkafkas_partitioner_tests(
    partitioner: Partitioner, key: bytes, hashed: int
) -> None:
    assert shard_for(key, 17, partitioner) == hashed % 17


@pytest.mark.parametrize(("key", "expected"), KAFKA_PYTHON_1000.items())
def test_murmur2_shard_matches_kafka_python(key: bytes, expected: int) -> None:
    assert shard_for(key, 1000, "murmur2") == expected


def test_crc32_takes_the_checksum_unsigned_and_the_empty_key_to_partition_0() -> None:
    assert zlib.crc32(b"23456") & 0x80000000  # high bit set: a signed modulo would differ
    assert shard_for(b"23456", 1000, "crc32") == 0xB1B451D7 % 1000
    assert shard_for(b"", 7, "crc32") == 0


@given(st.binary(max_size=64), st.integers(1, 10_000), st.sampled_from(PARTITIONERS))
def test_shards_are_in_range(key: bytes, partitions: int, partitioner: Partitioner) -> None:
    assert 0 <= shard_for(key, partitions, partitioner) < partitions


@given(st.binary(max_size=64))
def test_murmur2_is_a_signed_32_bit_int(key: bytes) -> None:
    assert -(2**31) <= murmur2(key) < 2**31


def test_shard_for_uri_hashes_the_uri_bytes() -> None:
    uri = "/region/west"
    for partitioner in PARTITIONERS:
        assert shard_for_uri(uri, 12, partitioner) == shard_for(uri.encode(), 12, partitioner)


@pytest.mark.parametrize(("partitions", "partitioner"), [(0, "murmur2"), (-1, "crc32")])
def test_partitions_must_be_positive(partitions: int, partitioner: Partitioner) -> None:
    with pytest.raises(ValueError, match="partitions must be positive"):
        shard_for(b"k", partitions, partitioner)


def test_an_unknown_partitioner_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown partitioner 'fnv'"):
        shard_for(b"k", 3, "fnv")  # type: ignore[arg-type]
