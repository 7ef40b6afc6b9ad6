"""The log field vocabulary's helpers: partition names, a component's own fields."""

from __future__ import annotations

import logging

from swimstream.logfields import FieldsLog, partition_fields, partition_names


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_partitions_are_named_as_kafka_names_them_sorted() -> None:
    pairs = [("orders", 3), ("a.b", 10), ("orders", 0)]
    assert partition_names(pairs) == ["a.b-10", "orders-0", "orders-3"]
    assert partition_fields(pairs) == {
        "topics": ["a.b", "orders"],
        "partitions": ["a.b-10", "orders-0", "orders-3"],
    }


def test_a_components_fields_go_on_each_of_its_lines_with_those_a_call_adds() -> None:
    logger = logging.getLogger("swimstream.test.fields")
    kept = Kept()
    logger.addHandler(kept)
    logger.setLevel(logging.INFO)
    try:
        log = FieldsLog(logger, group="g", broker="b:9092")
        log.info("plain")
        log.info("more", extra={"topic": "t", "group": "its own"})
    finally:
        logger.removeHandler(kept)
    plain, more = (vars(r) for r in kept.records)
    assert (plain["group"], plain["broker"]) == ("g", "b:9092") and "topic" not in plain
    assert (more["group"], more["broker"], more["topic"]) == ("its own", "b:9092", "t")
