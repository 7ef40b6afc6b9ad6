"""Shards: which partition, and so which instance, an agent key belongs to.

With Kafka, shard ``p`` is owned by whichever instance the consumer group assigned
partition ``p`` of the source topics. If an agent's shard is computed with the partitioner
the producers used, every keyed event arrives at the instance that already owns its agent
and nothing is forwarded. Two partitioners cover the producers met in practice:

* ``murmur2`` — the Java client's default for keyed records
  (``Utils.toPositive(Utils.murmur2(key)) % partitions``), and librdkafka's
  ``murmur2``/``murmur2_random``.
* ``crc32`` — librdkafka's ``consistent``/``consistent_random`` (the default of
  confluent-kafka and other librdkafka clients): ``rd_crc32(key) % partitions``, with the
  CRC taken as unsigned, so no sign masking.

Agents that no keyed topic feeds (a ``/region/west`` summary) hash their node URI's bytes
the same way, so every instance computes the same owner for them without coordination.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final, Literal

Partitioner = Literal["murmur2", "crc32"]
PARTITIONERS: Final[tuple[Partitioner, ...]] = ("murmur2", "crc32")

_MASK32: Final = 0xFFFFFFFF
_M: Final = 0x5BD1E995
_SEED: Final = 0x9747B28C


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of ``data``, as the signed int ``Utils.murmur2`` returns."""
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    whole = length & ~3
    for (k,) in struct.iter_unpack("<I", data[:whole]):
        k = (k * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = ((h * _M) & _MASK32) ^ k
    tail = length & 3
    if tail:
        if tail == 3:
            h ^= data[whole + 2] << 16
        if tail >= 2:
            h ^= data[whole + 1] << 8
        h ^= data[whole]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def shard_for(key: bytes, partitions: int, partitioner: Partitioner) -> int:
    """The partition a producer using ``partitioner`` sends a record keyed ``key`` to.

    ``murmur2`` matches the Java client for keyed records; ``crc32`` matches librdkafka's
    consistent partitioners (an empty key goes to partition 0 there, as here).
    """
    if partitions <= 0:
        raise ValueError(f"partitions must be positive, got {partitions}")
    if partitioner == "murmur2":
        return (murmur2(key) & 0x7FFFFFFF) % partitions
    if partitioner == "crc32":
        return zlib.crc32(key) % partitions
    raise ValueError(f"unknown partitioner {partitioner!r}; expected one of {PARTITIONERS}")


def shard_for_uri(uri: str, partitions: int, partitioner: Partitioner) -> int:
    """The shard of an agent that no keyed topic feeds: its node URI's UTF-8 bytes, hashed.

    Pass the canonical URI (see :attr:`RouteMatch.uri`), so that two spellings of one
    node cannot land on two shards.
    """
    return shard_for(uri.encode("utf-8"), partitions, partitioner)
