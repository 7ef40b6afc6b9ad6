"""The names of the fields log lines carry, one name per thing whatever the component.

A log pipeline (Loki, Elasticsearch) filters by field, not by prose: every line about a
topic carries ``topic``, whether the admin, the source, the changelog reader or the dead
letter wrote it, and the same name always holds the same type, so an index maps it once.

=============  ============  ====================================================
field          type          what
=============  ============  ====================================================
``app``        text          the app (config ``app``); on every line of ``run``
``instance``   text          the instance id (``mesh.instance_id``); on every line
``broker``     text          the broker's address (bootstrap servers, service URL)
``group``      text          the consumer group (a Pulsar subscription)
``topic``      text          the one topic the line is about
``topics``     list of text  the topics, where a line is about several
``partition``  integer       one partition of ``topic``
``partitions`` list of text  partitions as ``<topic>-<n>`` (Kafka's own notation)
``offset``     integer       one offset of ``topic``'s ``partition``
``node``       text          an agent's node URI
``lane``       text          a lane of ``node``
``callback``   text          a callback of ``lane`` (``on_command``...)
``shard``      integer       one shard; ``shards``, a list of them
``checkpoint`` integer       a checkpoint's id
``url``        text          the web port's URL
``records``    integer       how many records what the line reports took in
``seconds``    number        how long what the line reports took
=============  ============  ====================================================

Those name what the line is about, and its message names them too; the text format
(:mod:`swimstream.cli.logs`) does not repeat them. Other fields
(``key``, ``read_to``...) are details a line adds. This module imports nothing of
swimstream, so every layer and the connectors may use it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

NAMED = frozenset(
    {
        "app",
        "instance",
        "broker",
        "group",
        "topic",
        "topics",
        "partition",
        "partitions",
        "offset",
        "node",
        "lane",
        "callback",
        "shard",
        "shards",
        "checkpoint",
        "url",
        "records",
        "seconds",
    }
)
"""Fields a line's message names (or, for ``app`` and ``instance``, that every line of
an instance carries), which a text line leaves out."""

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]
"""A logger, or one that attaches a component's own fields to its lines."""


def partition_names(partitions: Iterable[tuple[str, int]]) -> list[str]:
    """``["orders-0", "orders-3"]`` for (topic, partition) pairs, sorted."""
    return [f"{topic}-{partition}" for topic, partition in sorted(partitions)]


def partition_fields(partitions: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """``topics`` and ``partitions`` of a line about some partitions."""
    pairs = sorted(partitions)
    return {"topics": sorted({t for t, _ in pairs}), "partitions": partition_names(pairs)}


class FieldsLog(logging.LoggerAdapter[logging.Logger]):
    """A logger whose lines all carry ``fields`` (a source's ``group`` and ``broker``),
    merged with those a call adds (the call's win)."""

    def __init__(self, logger: logging.Logger, **fields: Any) -> None:
        super().__init__(logger, fields)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        own: Mapping[str, object] = self.extra or {}
        kwargs["extra"] = {**own, **kwargs["extra"]} if kwargs.get("extra") else own
        return msg, kwargs
