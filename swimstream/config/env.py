"""``${VAR}`` and ``${VAR:-default}`` in configuration values.

Substitution runs on the parsed YAML, string value by string value, as docker compose
does: a substituted value can hold any character without breaking the YAML around it,
and a problem names the key path it is under. The environment is a mapping handed in by
the caller, which reads ``os.environ`` once at the entry point, so loading a
configuration has no hidden inputs and tests pass their own.

* ``${VAR}`` — the variable's value; an error if it is unset.
* ``${VAR:-default}`` — the default when the variable is unset or empty.
* ``$$`` — a literal ``$``.

A default is plain text, and may hold braces that pair up, so a route template can be
one: ``${ROUTE:-/device/{key}}`` defaults to ``/device/{key}`` (the reference ends at the
``}`` that closes its ``${``). A reference in a default, ``${A:-${B}}``, is refused, and
so is a ``${`` whose braces never close, such as ``${A:-{x}``.

A value that is exactly one reference becomes the substituted text, and the field's
type converts it: ``partitions: ${PARTITIONS:-8}`` gives the integer 8. Text is all the
environment can give, so a substituted value is a :class:`Substituted` string: boolean
and integer fields parse it, while they refuse the same text written in the YAML
(``durable: "no"`` is a mistake; ``durable: ${DURABLE:-false}`` is not).
Keys are never substituted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from swimstream.config.problems import Problem, format_path, key_text
from swimstream.config.secrets import is_secret_path


class Substituted(str):
    """A string value that took text from the environment (see the module docstring).

    Boolean fields take text only in this form (integer fields take any text, and no
    boolean); pydantic turns these into plain ``str`` in string fields, and the parsers
    of routes and lane names do too, so none reaches the configuration.
    """

    __slots__ = ()


_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def substitute(document: Any, env: Mapping[str, str]) -> tuple[Any, list[Problem]]:
    """``document`` with every reference in its string values replaced from ``env``.

    Returns the new document and the problems found (unset variables, malformed
    references), each at the key path of the value it was in.
    """
    problems: list[Problem] = []
    result = _walk(document, env, [], problems, set())
    return result, problems


def _walk(
    node: Any,
    env: Mapping[str, str],
    path: list[int | str],
    problems: list[Problem],
    enclosing: set[int],
) -> Any:
    """``node`` substituted; ``enclosing`` holds the ids of the containers around it.

    A YAML alias may name a value that contains the alias itself (``sources: &s [*s]``);
    such a value is infinitely deep, so it is reported at the path where it refers back
    (and left out, as ``None``) instead of being followed.
    """
    if isinstance(node, str):
        return _substitute_text(node, env, path, problems) if "$" in node else node
    if not isinstance(node, Mapping | list):
        return node
    if id(node) in enclosing:
        problems.append(
            (
                format_path(path),
                "a YAML alias here names a value that contains it (a recursive anchor), "
                "so the value would be infinitely deep",
            )
        )
        return None
    enclosing.add(id(node))
    try:
        if isinstance(node, Mapping):
            return {
                key: _walk(value, env, [*path, key_text(key)], problems, enclosing)
                for key, value in node.items()
            }
        return [
            _walk(item, env, [*path, index], problems, enclosing) for index, item in enumerate(node)
        ]
    finally:
        enclosing.discard(id(node))


def _substitute_text(
    text: str, env: Mapping[str, str], path: list[int | str], problems: list[Problem]
) -> str:
    pieces: list[str] = []
    substituted = False
    position = 0
    while (dollar := text.find("$", position)) != -1:
        pieces.append(text[position:dollar])
        follower = text[dollar + 1 : dollar + 2]
        if follower != "{":  # "$$" is a "$"; a "$" before anything else stands as it is
            pieces.append("$")
            position = dollar + (2 if follower == "$" else 1)
            continue
        close = _closing_brace(text, dollar + 1)
        if close is None:
            hint = " (braces in a default must pair up)" if "{" in text[dollar + 2 :] else ""
            problems.append((format_path(path), f"'${{' without a closing '}}'{hint}"))
            pieces.append("${")
            position = dollar + 2
            continue
        value = _resolve(text[dollar + 2 : close], env, path, problems)
        if value is None:
            pieces.append(text[dollar : close + 1])
        else:
            pieces.append(value)
            substituted = True
        position = close + 1
    if not pieces:
        return text
    pieces.append(text[position:])
    result = "".join(pieces)
    return Substituted(result) if substituted else result


def _closing_brace(text: str, opening: int) -> int | None:
    """The index of the ``}`` that pairs with the ``{`` at ``opening``, if there is one."""
    depth = 0
    for index in range(opening, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def _resolve(
    reference: str, env: Mapping[str, str], path: list[int | str], problems: list[Problem]
) -> str | None:
    """The text ``${reference}`` stands for, or ``None`` after recording its problem."""
    name, separator, default = reference.partition(":-")
    # A secret may hold "${" as text: what follows is the secret, not a name to quote.
    secret = is_secret_path(path)
    if _VARIABLE.fullmatch(name) is None:
        quoted = "a '${...}'" if secret else f"${{{reference}}}"
        problems.append(
            (
                format_path(path),
                f"{quoted} is not a variable reference; "
                "write ${NAME} or ${NAME:-default} ($$ for a literal $)",
            )
        )
        return None
    if "${" in default:
        quoted = "${...:-...}" if secret else f"${{{name}:-...}}"
        problems.append(
            (
                format_path(path),
                f"the default of {quoted} holds a reference; a default is plain "
                "text (nested references are not supported)",
            )
        )
        return None
    value = env.get(name)
    if separator:
        return value if value else default
    if value is None:
        problems.append(
            (
                format_path(path),
                f"environment variable {name} is not set "
                f"(write ${{{name}:-default}} to give a default)",
            )
        )
        return None
    return value
