"""The names an agent class publishes to, read from its source, for ``check`` and ``run``.

``self.publish("alertz", ...)`` with no sink declaring ``publish: alertz`` fails its
callback every time it runs, and only then: a typo in a name found at the first alert,
in production. The class's source says which names it passes as a string literal, so
the check can name the line before anything runs. A name computed at run time is not
seen here; it still fails its callback, naming the fix.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Iterator
from typing import Any, NamedTuple


class Publish(NamedTuple):
    """A ``self.publish(<literal name>, ...)`` call in an agent class's source."""

    name: str
    where: str
    """``file:line`` of the call."""


def published_names(cls: type[Any]) -> list[Publish]:
    """The literal names ``cls`` and the classes it inherits from (not the framework's)
    pass to ``self.publish``; none for a class whose source cannot be read."""
    found: list[Publish] = []
    for klass in cls.__mro__:
        if klass.__module__.startswith("swimstream.") or klass is object:
            continue
        found.extend(_calls_in(klass))
    return found


def _calls_in(klass: type[Any]) -> Iterator[Publish]:
    try:
        lines, first = inspect.getsourcelines(klass)
        path = inspect.getsourcefile(klass) or "<unknown>"
    except (OSError, TypeError):
        return  # (a class made at run time, or shipped without its source)
    try:
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except SyntaxError:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _published(node)
            if name is not None:
                yield Publish(name, f"{path}:{first + node.lineno - 1}")


def _published(node: ast.Call) -> str | None:
    """The literal name of a ``self.publish(...)`` call, else None."""
    function = node.func
    if not (
        isinstance(function, ast.Attribute)
        and function.attr == "publish"
        and isinstance(function.value, ast.Name)
        and function.value.id == "self"
    ):
        return None
    argument: ast.expr | None = node.args[0] if node.args else None
    for keyword in node.keywords:
        if keyword.arg == "topic":
            argument = keyword.value
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return argument.value
    return None
