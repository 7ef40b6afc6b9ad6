"""Structured logs: one JSON object per line for machines, a readable line for people.

``--log-format json`` (the default when stderr is not a terminal, as under Docker or
systemd) writes ``{"ts", "level", "logger", "message", ...extra}`` per record, where
the extras are what the code attached (``node``, ``lane``, ``topic``, ``partitions``...,
named as :mod:`swimstream.logfields` lists), so a log pipeline can filter by agent or
partition without parsing prose. Once ``run`` knows them, every line also carries ``app``
and ``instance`` (:func:`log_context`), so lines of several instances merged in one index
stay apart.

The text format is for a person at a terminal: the message, then only the fields it does
not already say. The fields of :data:`~swimstream.logfields.NAMED` are named by their
messages (and ``app``/``instance`` are the same on every line), and a field whose value
the message spells out verbatim is left out too: ``read to {0: 12}  read_to={0: 12}`` was
noise.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import Any, TextIO

from swimstream.logfields import NAMED

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_OWN_FIELDS = ("ts", "level", "logger", "message", "error")


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object, whatever the code attached to it.

    A line a pipeline cannot parse is a line lost, so the output is strict JSON: a dict
    keyed by tuples (a partition's ``(topic, partition)``) has its keys written as text,
    NaN and infinities as text, anything else JSON has no type for as its ``str`` (a
    dict keyed by tuples used to lose the line to a ``--- Logging error ---``
    traceback, and NaN wrote ``NaN``, which strict parsers refuse). An extra named like
    one of the record's own fields (``level``, ``ts``, ...) is written as
    ``extra.<name>``: a ``level`` extra made a warning read ``debug``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[f"extra.{key}" if key in _OWN_FIELDS else key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        try:
            return json.dumps(entry, default=str, allow_nan=False)
        except (TypeError, ValueError):  # (rare: a key or a float JSON cannot hold)
            pass
        try:
            return json.dumps(_strict(entry), default=str, allow_nan=False)
        except (TypeError, ValueError, RecursionError):  # (a value that contains itself)
            return json.dumps({k: v if k in _OWN_FIELDS else repr(v) for k, v in entry.items()})


def _strict(value: Any) -> Any:
    """``value`` with what strict JSON cannot hold as text: non-scalar keys, NaN, infinity."""
    if isinstance(value, dict):
        return {
            k if isinstance(k, str | int | bool) or k is None else str(k): _strict(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class TextFormatter(logging.Formatter):
    """``12:00:01 info  swimstream.service  message  key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        message = record.getMessage()
        extras = " ".join(
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_") and not _said(k, v, message)
        )
        line = f"{clock} {record.levelname.lower():<7} {record.name:<22} {message}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _said(name: str, value: Any, message: str) -> bool:
    """Whether a text line leaves field ``name`` out: its message names it, or spells
    out its value (of three characters or more: a ``1`` found in "1 record" says little)."""
    if name in NAMED:
        return True
    text = str(value)
    return len(text) >= 3 and text in message


class _Context(logging.Filter):
    """Fields every record gets unless it has its own (``app``, ``instance``)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, Any] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in self.fields.items():
            if name not in vars(record):
                setattr(record, name, value)
        return True


_context = _Context()


def log_context(**fields: Any) -> None:
    """Attach ``fields`` to every line logged from now on (through
    :func:`configure_logging`'s handler), as the instance's ``app`` and ``instance``."""
    _context.fields.update(fields)


def configure_logging(
    level: str = "info", style: str | None = None, stream: TextIO | None = None
) -> str:
    """Send swimstream's logs (and the root logger's) to ``stream`` in ``style``; returns
    the style chosen (``text`` or ``json``)."""
    stream = stream or sys.stderr
    if style is None:
        style = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if style == "json" else TextFormatter())
    _context.fields.clear()
    handler.addFilter(_context)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    return style
