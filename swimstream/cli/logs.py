"""Structured logs: one JSON object per line for machines, a readable line for people.

``--log-format json`` (the default when stderr is not a terminal, as under Docker or
systemd) writes ``{"ts", "level", "logger", "message", ...extra}`` per record, where
the extras are what the code attached (``node``, ``lane``, ``topic``, ``partition``...),
so a log pipeline can filter by agent or partition without parsing prose.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import Any, TextIO

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
        extras = " ".join(
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_")
        )
        line = f"{clock} {record.levelname.lower():<7} {record.name:<22} {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    return style
