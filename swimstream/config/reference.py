"""The configuration reference, generated from the models.

Every field is documented once, in its model's ``Field(description=...)``; the README's
reference is this module's output, so documentation and validation cannot drift apart.
One table per part, one row per key, with its type, default and description.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from swimstream.config.app import AppConfig
from swimstream.config.values import DEFAULT_DOC, TypeDoc

_INTRO = """\
A swimstream app is configured by one YAML file, the same for every instance of the app.
Unknown keys are errors. Any string value may use `${VAR}` (an error when `VAR` is unset)
or `${VAR:-default}` (the default, plain text, when `VAR` is unset or empty); `$$` is a literal `$`.
A default may hold braces that pair up, such as a route template's: `${ROUTE:-/vehicle/{key}}`
defaults to `/vehicle/{key}`; it may not hold another reference.
A boolean key takes `true` or `false`, not a number or a quoted string, and an integer
key takes no boolean; a reference gives either as text (`durable: ${DURABLE:-true}`).
Inside `{...}` flow mappings, quote values holding braces (references, route templates):
`broker: {bootstrap: "${KAFKA}"}`, `- {topic: t, route: "/vehicle/{key}", lane: position}`.
A duration is `250ms`, `5s`, `2m`, `1h` or a bare number of seconds (`commit_interval: 100`
is 100 s, not Kafka's milliseconds). `swimstream check --config app.yaml` reports every
problem it finds, each with its key path, and imports the class of every agent whose own
entry is valid; the checks that join keys together (the agent routes sources reach, the
lanes sources and sinks name, the names agent classes pass to `self.publish` as
literals) wait until the keys they depend on are valid: any but those of `processing`,
`mesh`, `store`, `web`, `dead_letter` and `broker.settings`.
"""

_PRIMITIVES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def render_reference(title: str = "Configuration reference", level: int = 2) -> str:
    """The Markdown reference of every configuration key, under a heading of ``level``."""
    hashes = "#" * level
    lines = [f"{hashes} {title}", "", _INTRO]
    for heading, prefix, model in _sections():
        lines += [f"{hashes}# {heading}", ""]
        summary = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
        if summary:  # a model's first paragraph introduces its section
            lines += [summary, ""]
        lines += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
        for name, field in model.model_fields.items():
            key = field.alias or name
            lines.append(
                f"| `{prefix}{key}` | {_type_text(field)} | {_default_text(field)} "
                f"| {_escape(field.description or '')} |"
            )
        lines.append("")
    return "\n".join(lines)


def documented_keys() -> Iterator[str]:
    """Every key the reference documents, as it appears there (``sources[].topic``)."""
    for _, prefix, model in _sections():
        for name, field in model.model_fields.items():
            yield prefix + (field.alias or name)


def _sections() -> Iterator[tuple[str, str, type[BaseModel]]]:
    """(heading, key prefix, model) for the top level and every nested part, depth first."""
    pending: list[tuple[str, str, type[BaseModel]]] = [("Top level", "", AppConfig)]
    while pending:
        heading, prefix, model = pending.pop(0)
        yield heading, prefix, model
        nested = []
        for name, field in model.model_fields.items():
            key = field.alias or name
            inner, shape = _nested_model(field.annotation)
            if inner is not None:
                child = f"{prefix}{key}{shape}"
                nested.append((f"`{child.removesuffix('.')}`", child, inner))
        pending[:0] = nested


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The model a field holds (directly, in a list or in a mapping) and the key suffix."""
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, "."
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (tuple, list) and args:
        item = _strip(args[0])
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item, "[]."
    if origin in (dict, Mapping) and len(args) == 2:
        value = _strip(args[1])
        if isinstance(value, type) and issubclass(value, BaseModel):
            return value, ".<name>."
    return None, ""


def _strip(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` metadata, and a model without ``| None``
    (an optional part, such as one way to authenticate, is documented like the others)."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], BaseModel):
            return members[0]
    return annotation


def _type_text(field: FieldInfo) -> str:
    for item in field.metadata:
        if isinstance(item, TypeDoc):
            return item.text
    return _annotation_text(field.annotation)


def _annotation_text(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        docs = [item for item in args[1:] if isinstance(item, TypeDoc)]
        return docs[0].text if docs else _annotation_text(args[0])
    if origin in (Union, types.UnionType):
        members = [arg for arg in args if arg is not type(None)]
        return " or ".join(_annotation_text(arg) for arg in members)
    if origin is Literal:
        return " \\| ".join(f"`{arg}`" for arg in args)
    if origin in (tuple, list):
        return f"list of {_annotation_text(args[0])}"
    if origin in (dict, Mapping):
        return f"mapping of {_annotation_text(args[0])} to {_annotation_text(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping (below)"
    return _PRIMITIVES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default_text(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get(DEFAULT_DOC), str):
        return str(extra[DEFAULT_DOC])
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "see below"
    else:
        value = field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if any(
        isinstance(item, TypeDoc) and item.text.startswith("duration") for item in field.metadata
    ):
        return f"`{_duration_text(float(value))}`"
    if isinstance(value, Mapping | tuple | list) and not value:
        return "`{}`" if isinstance(value, Mapping) else "`[]`"
    return f"`{value}`"


def _duration_text(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
