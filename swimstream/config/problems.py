"""Turning validation failures into ``path: problem`` lines a person can act on.

Pydantic reports errors as location tuples and messages written for programmers
(``Input should be 'kafka', 'pulsar' or 'embedded'``). The service reports them the way
its YAML reads: ``broker.kind: expected 'kafka', 'pulsar' or 'embedded', got 'kafak'``,
``sources[1].route: unknown placeholder {paylod.id}; ...``, one line per problem, all of
them at once. Unknown keys get a "did you mean" from the keys the model accepts there.

Validators that check several fields at once raise :class:`ConfigError` with paths
relative to where they run; those are joined onto the location pydantic reports.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from swimstream.config.secrets import holds_secrets
from swimstream.errors import ConfigError

Problem = tuple[str, str]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")
# location parts pydantic adds for its own schema steps, not keys of the document
_SCHEMA_STEP = re.compile(r"^(function-|lax-|json-or-python|tagged-union|union\[)")


def format_path(loc: Sequence[int | str]) -> str:
    """``("sources", 1, "route")`` as ``sources[1].route``; odd keys as ``['group.id']``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            path += f".{part}" if path else part
        else:
            path += f"[{part!r}]"
    return path


def join_path(base: str, relative: str) -> str:
    """``relative`` (as a validator reported it) below ``base``."""
    if not base or not relative:
        return base or relative
    return base + relative if relative.startswith("[") else f"{base}.{relative}"


def problems_from_validation(exc: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """Every problem in ``exc``, as ``(path, message)``, in the order pydantic found them."""
    problems: list[Problem] = []
    errors = exc.errors(include_url=False)
    spelled = _key_spellings(errors)
    for error in errors:
        loc = _respell(_document_loc(error), spelled)
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigError):
            base = format_path(loc)
            problems.extend((join_path(base, path), message) for path, message in cause.problems)
            continue
        if error["type"] == "invalid_key":  # a key YAML read as a number, null, a date...
            loc[-1] = key_text(error.get("input"))
            problems.append((format_path(loc), _unknown_key(root, loc)))
            continue
        if loc and loc[-1] == "[key]":  # a mapping key itself is wrong
            loc.pop()
            loc[-1] = str(loc[-1])  # a key, even when YAML read it as a number
            message = _message(error, root, loc)
            if error.get("input") is None or isinstance(error.get("input"), bool):
                message += (
                    "; YAML reads an unquoted yes, no, on, off, true or false as a boolean "
                    "and ~ or null as null: quote the key"
                )
            problems.append((format_path(loc), message))
            continue
        problems.append((format_path(loc), _message(error, root, loc)))
    return problems


def _document_loc(error: ErrorDetails) -> list[int | str]:
    return [part for part in error["loc"] if not _is_schema_step(part)]


def _key_spellings(errors: list[ErrorDetails]) -> dict[tuple[int | str, ...], str]:
    """The mapping keys that are no strings, spelled as YAML read them, by location.

    Pydantic names such a key in a location by a lossy stand-in (``no:`` as ``0``,
    ``~:`` as ``'None'``, ``on:`` as ``1``), which would read as a list index or another
    key; the key's own ``[key]`` error carries the key itself.
    """
    spelled: dict[tuple[int | str, ...], str] = {}
    for error in errors:
        loc = _document_loc(error)
        key = error.get("input")
        if len(loc) >= 2 and loc[-1] == "[key]" and not isinstance(key, str):
            spelled[tuple(loc[:-1])] = key_text(key)
    return spelled


def _respell(loc: list[int | str], spelled: dict[tuple[int | str, ...], str]) -> list[int | str]:
    """``loc`` with every stand-in of a non-string key replaced by the key's spelling."""
    if not spelled:
        return loc
    return [spelled.get(tuple(loc[: depth + 1]), part) for depth, part in enumerate(loc)]


def _is_schema_step(part: int | str) -> bool:
    return isinstance(part, str) and _SCHEMA_STEP.match(part) is not None


def key_text(key: Any) -> str:
    """A mapping key as YAML read it: strings as they are; others as YAML spells them
    (``1``, ``null``, ``true``), since a key path holds text."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, date):
        return key.isoformat()
    return str(key)


def shown_value(value: Any) -> str:
    """``value`` for a message, shortened: a date YAML read as written (not Python's
    ``datetime.date(2026, 1, 1)``), anything else as its ``repr``."""
    if isinstance(value, date):
        return f"{value.isoformat()}, which YAML reads as a date (quote it to keep it text)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any, *, secret: bool = False) -> str:
    if secret and not isinstance(value, bool | Mapping | list | tuple) and value is not None:
        return f"{_article(type(value).__name__)} (its text not shown: it may hold a secret)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return shown_value(value)


def _article(type_name: str) -> str:
    word = {"str": "string", "int": "integer", "float": "number"}.get(type_name, type_name)
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else shown_value(value)


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "tuple_type": "a list",
    "list_type": "a list",
}


def _message(error: ErrorDetails, root: type[BaseModel], loc: list[int | str]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return _unknown_key(root, loc)
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        return f"expected {ctx['expected']}, got {shown_value(value)}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_kind(value, secret=holds_secrets(loc))}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {
            "greater_than_equal": f"at least {_number(ctx.get('ge'))}",
            "greater_than": f"more than {_number(ctx.get('gt'))}",
            "less_than_equal": f"at most {_number(ctx.get('le'))}",
            "less_than": f"less than {_number(ctx.get('lt'))}",
        }[kind]
        return f"must be {bound}, got {_number(value)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        minimum = ctx.get("min_length")
        return "must not be empty" if minimum == 1 else f"needs at least {minimum} entries"
    message = error["msg"]
    return f"{message[:1].lower()}{message[1:]}, got {shown_value(value)}"


def _unknown_key(root: type[BaseModel], loc: list[int | str]) -> str:
    model = _model_at(root, loc[:-1])
    if model is None:
        return "unknown key"
    keys = [field.alias or name for name, field in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), keys, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key; expected one of: {', '.join(keys)}"


def _model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc``, if one does."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {field.alias or name: field for name, field in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[str(part)].annotation
        elif get_origin(current) in (dict, Mapping) and isinstance(part, str):
            current = get_args(current)[1]
        elif get_origin(current) in (tuple, list) and isinstance(part, int):
            current = get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` metadata and without ``| None``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
