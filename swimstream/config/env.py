"""``${VAR}`` and ``${VAR:-default}`` in configuration values.

Substitution runs on the parsed YAML, string value by string value, as docker compose
does: a substituted value can hold any character without breaking the YAML around it,
and a problem names the key path it is under. The environment is a mapping handed in by
the caller, which reads ``os.environ`` once at the entry point, so loading a
configuration has no hidden inputs and tests pass their own.

* ``${VAR}`` — the variable's value; an error if it is unset.
* ``${VAR:-default}`` — the default when the variable is unset or empty.
* ``$$`` — a literal ``$``.

A default is plain text: ``${A:-${B}}`` is refused rather than read as ``${A:-$`` and
``{B}}``.

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

from swimstream.config.problems import Problem, format_path


class Substituted(str):
    """A string value that took text from the environment (see the module docstring).

    Boolean fields take text only in this form (integer fields take any text, and no
    boolean); pydantic turns these into plain ``str`` in string fields, and the parsers
    of routes and lane names do too, so none reaches the configuration.
    """

    __slots__ = ()


_REFERENCE = re.compile(r"\$(?:(\$)|\{([^}]*)\}|(\{))")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def substitute(document: Any, env: Mapping[str, str]) -> tuple[Any, list[Problem]]:
    """``document`` with every reference in its string values replaced from ``env``.

    Returns the new document and the problems found (unset variables, malformed
    references), each at the key path of the value it was in.
    """
    problems: list[Problem] = []
    result = _walk(document, env, [], problems)
    return result, problems


def _walk(node: Any, env: Mapping[str, str], path: list[int | str], problems: list[Problem]) -> Any:
    if isinstance(node, str):
        return _substitute_text(node, env, path, problems) if "$" in node else node
    if isinstance(node, Mapping):
        return {key: _walk(value, env, [*path, str(key)], problems) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(item, env, [*path, index], problems) for index, item in enumerate(node)]
    return node


def _substitute_text(
    text: str, env: Mapping[str, str], path: list[int | str], problems: list[Problem]
) -> str:
    substituted = False

    def replace(found: re.Match[str]) -> str:
        nonlocal substituted
        escaped, reference, unclosed = found.groups()
        if escaped:
            return "$"
        if unclosed:
            problems.append((format_path(path), "'${' without a closing '}'"))
            return found.group(0)
        name, separator, default = reference.partition(":-")
        if _VARIABLE.fullmatch(name) is None:
            problems.append(
                (
                    format_path(path),
                    f"${{{reference}}} is not a variable reference; "
                    "write ${NAME} or ${NAME:-default}",
                )
            )
            return found.group(0)
        if "${" in default:  # ${A:-${B}}: the regex stopped at B's brace, leaving a '}'
            problems.append(
                (
                    format_path(path),
                    f"the default of ${{{name}:-...}} holds a reference; a default is plain "
                    "text (nested references are not supported)",
                )
            )
            return found.group(0)
        value = env.get(name)
        if separator:
            substituted = True
            return value if value else default
        if value is None:
            problems.append(
                (
                    format_path(path),
                    f"environment variable {name} is not set "
                    f"(write ${{{name}:-default}} to give a default)",
                )
            )
            return found.group(0)
        substituted = True
        return value

    result = _REFERENCE.sub(replace, text)
    return Substituted(result) if substituted else result
