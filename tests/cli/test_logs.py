"""JSON log lines: strict JSON whatever the code attached, the record's own fields kept."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from swimstream.cli.logs import JsonFormatter, TextFormatter, configure_logging, log_context


def record(severity: int = logging.WARNING, /, **extra: Any) -> logging.LogRecord:
    """A record as ``log.log(severity, "held %s", "back", extra=extra)`` makes it."""
    made = logging.LogRecord("swimstream.test", severity, __file__, 1, "held %s", ("back",), None)
    made.__dict__.update(extra)
    return made


def strict_loads(line: str) -> dict[str, Any]:
    """As a strict parser reads it (Go's, jq's): NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    loaded: dict[str, Any] = json.loads(line, parse_constant=refuse)
    return loaded


def test_a_dict_keyed_by_tuples_is_written_not_lost() -> None:
    """(The line was lost: ``--- Logging error ---`` and a TypeError traceback instead.)"""
    line = JsonFormatter().format(record(cut={("readings", 0): 5}))
    assert strict_loads(line)["cut"] == {"('readings', 0)": 5}


def test_nan_and_infinity_are_written_as_text() -> None:
    """(``NaN`` was written, which strict JSON parsers refuse.)"""
    entry = strict_loads(JsonFormatter().format(record(temp=float("nan"), top=float("inf"))))
    assert (entry["temp"], entry["top"]) == ("nan", "inf")


def test_an_extra_named_like_a_field_of_the_record_does_not_replace_it() -> None:
    """(A ``level`` extra made a warning read ``debug`` to a pipeline filtering by level.)"""
    entry = strict_loads(JsonFormatter().format(record(level="debug", ts="then")))
    assert entry["level"] == "warning" and entry["extra.level"] == "debug"
    assert entry["ts"] != "then" and entry["extra.ts"] == "then"
    assert entry["message"] == "held back" and entry["logger"] == "swimstream.test"


def test_a_value_that_contains_itself_is_written_as_its_repr() -> None:
    looped: list[Any] = [float("nan")]
    looped.append(looped)
    entry = strict_loads(JsonFormatter().format(record(looped=looped)))
    assert entry["looped"] == "[nan, [...]]" and entry["level"] == "warning"


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
keys = scalars.filter(lambda k: not isinstance(k, bytes)) | st.tuples(st.text(), st.integers())
values = st.recursive(
    scalars | st.frozensets(st.integers(), max_size=3),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=12,
)
names = st.sampled_from(["node", "lane", "cut", "level", "ts", "logger", "error", "topic"])


@given(extra=st.dictionaries(names, values, max_size=4), severity=st.sampled_from([20, 30, 40]))
def test_every_line_is_strict_json_with_the_records_own_fields(
    extra: dict[str, Any], severity: int
) -> None:
    entry = strict_loads(JsonFormatter().format(record(severity, **extra)))
    assert entry["level"] == logging.getLevelName(severity).lower()
    assert entry["logger"] == "swimstream.test" and entry["message"] == "held back"
    for name in extra:
        assert (f"extra.{name}" if name in ("level", "ts", "logger", "error") else name) in entry


def test_a_text_line_names_the_extras_after_the_message() -> None:
    stream = io.StringIO()
    stream.write(TextFormatter().format(record(code="_TRANSPORT")))
    assert stream.getvalue().endswith("held back  code=_TRANSPORT")


def test_a_text_line_does_not_repeat_what_its_message_says() -> None:
    """The vocabulary's fields are named by their messages, and a value the message
    spells out is not written twice: ``read to {0: 12}  read_to={0: 12}`` was noise."""
    said = logging.LogRecord(
        "swimstream.test", logging.INFO, __file__, 1, "%s read to %s", ("t", {0: 12}), None
    )
    said.__dict__.update(topic="t", partitions=["t-0"], read_to={0: 12}, code="_TRANSPORT")
    line = TextFormatter().format(said)
    assert line.endswith("t read to {0: 12}  code=_TRANSPORT"), line


def test_a_text_line_keeps_a_short_value_its_message_may_hold_by_chance() -> None:
    line = TextFormatter().format(record(attempt=1))  # ("held back" has no "1", but a
    assert line.endswith("held back  attempt=1")  # "1 record" would not say the attempt)


def test_once_the_run_knows_them_every_line_carries_app_and_instance() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging("info", "json", stream)
        log_context(app="towers", instance="towers-a")
        logging.getLogger("swimstream.test").info("one")
        logging.getLogger("swimstream.test").info("two", extra={"instance": "its own"})
        configure_logging("info", "json", stream)  # (a new configuration starts without)
        logging.getLogger("swimstream.test").info("three")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    one, two, three = (strict_loads(line) for line in stream.getvalue().splitlines())
    assert (one["app"], one["instance"]) == ("towers", "towers-a")
    assert (two["app"], two["instance"]) == ("towers", "its own")
    assert "app" not in three and "instance" not in three
