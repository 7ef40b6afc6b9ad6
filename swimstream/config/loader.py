"""Loading a configuration: YAML text or file in, a validated :class:`AppConfig` out.

The steps, each reporting every problem it finds as ``path: message``:

1. parse the YAML (syntax errors give the line and column), refusing duplicate keys,
   which YAML itself would silently resolve to the last one;
2. substitute ``${VAR}`` references from the environment mapping passed in;
3. validate with the models, then the cross-checks of :class:`AppConfig`;
4. when the caller passes a :data:`~swimstream.config.SettingsCheck`, have the client
   library check ``broker.settings`` (names and values it refuses; nothing connects).

Duplicate keys and the problems of steps 2 to 4 are reported together; a value whose
variable is unset is not also reported as invalid. Agent classes are imported only by
:func:`~swimstream.config.resolve.resolve_agents`, a separate step, so loading a
configuration runs no user code (:func:`check_config`, which is that step too, imports
the classes of valid agent entries even when other keys are wrong).
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from swimstream.config.app import AppConfig
from swimstream.config.client_settings import SettingsCheck, usable_settings
from swimstream.config.env import substitute
from swimstream.config.problems import Problem, format_path, problems_from_validation
from swimstream.config.resolve import import_agent_classes, resolve_agents
from swimstream.config.secrets import HIDDEN, may_hold_secret
from swimstream.config.topology import AgentConfig
from swimstream.errors import ConfigError

_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def load_config(
    source: str | os.PathLike[str],
    env: Mapping[str, str],
    settings_check: SettingsCheck | None = None,
) -> AppConfig:
    """Load and validate a configuration; raise :class:`ConfigError` listing every problem.

    ``source`` is a path (any ``os.PathLike``, or a one-line string ending in ``.yaml``,
    ``.yml`` or ``.json``) or else the YAML text itself. ``env`` supplies ``${VAR}``
    values; pass ``os.environ`` from the entry point, or a dict in tests.
    ``settings_check`` has the client library check ``broker.settings`` too.
    """
    return _validated(*_read_document(source), env, settings_check)


def _validated(
    document: Any,
    duplicates: list[Problem],
    env: Mapping[str, str],
    settings_check: SettingsCheck | None,
) -> AppConfig:
    """:func:`parse_config`, its problems after the document's duplicate keys."""
    try:
        config = parse_config(document, env, settings_check)
    except ConfigError as exc:
        raise ConfigError(problems=duplicates + exc.problems) from None
    if duplicates:
        raise ConfigError(problems=duplicates)
    return config


def parse_config(
    document: Any, env: Mapping[str, str], settings_check: SettingsCheck | None = None
) -> AppConfig:
    """Validate an already parsed document (a mapping, as YAML or JSON gives it)."""
    if document is None:
        raise ConfigError(problems=[("", "the configuration is empty")])
    if not isinstance(document, Mapping):
        kind = "a list" if isinstance(document, list) else repr(document)
        raise ConfigError(
            problems=[("", f"the configuration must be a mapping of keys, got {kind}")]
        )
    data, env_problems = substitute(document, env)
    unset = [path for path, _ in env_problems]
    refused = [
        p
        for p in _refused_settings(data, settings_check)
        if not any(_is_under(p[0], path) for path in unset)
    ]
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_validation(exc, AppConfig)
        problems = [p for p in problems if not any(_is_under(p[0], path) for path in unset)]
        raise ConfigError(problems=env_problems + problems + refused) from None
    if env_problems or refused:
        raise ConfigError(problems=env_problems + refused)
    return config


def _refused_settings(data: Any, settings_check: SettingsCheck | None) -> list[Problem]:
    """The ``broker.settings`` the client library refuses (none without a check)."""
    broker = data.get("broker") if isinstance(data, Mapping) else None
    if settings_check is None or not isinstance(broker, Mapping):
        return []
    settings = usable_settings(broker.get("settings"))
    return [
        (format_path(["broker", "settings", *([name] if name else [])]), message)
        for name, message in settings_check(settings)
    ]


def read_yaml(source: str | os.PathLike[str]) -> Any:
    """The document in a YAML file or text; :class:`ConfigError` on unreadable input,
    or on keys given twice in one mapping."""
    document, duplicates = _read_document(source)
    if duplicates:
        raise ConfigError(problems=duplicates)
    return document


def _read_document(source: str | os.PathLike[str]) -> tuple[Any, list[Problem]]:
    """The document, and its duplicate keys: problems to report with the others (the
    last of the keys is the one the document holds), as the document reads all the same.
    """
    if isinstance(source, os.PathLike) or _looks_like_path(source):
        path = Path(source)
        try:
            text = _decoded(path.read_bytes())
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(problems=[(str(path), f"cannot read: {reason}")]) from None
    else:
        text = source
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, such as NUL
        raise ConfigError(problems=[_character_problem(exc, text)]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        duplicates = _duplicate_keys(node, [], set())
        return loader.construct_document(node), duplicates
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(problems=[_syntax_problem(exc)]) from None
    except RecursionError:  # (PyYAML reads each level of nesting by recursion)
        raise ConfigError(
            problems=[
                (
                    "",
                    "the YAML is nested too deeply to read "
                    "(lists or mappings hundreds of levels deep)",
                )
            ]
        ) from None
    finally:
        loader.dispose()


_TAG_KINDS = {
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:timestamp": "a date",
}


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but a scalar it cannot build is a syntax problem at its line
    (and tabs may separate the tokens of a flow collection: :meth:`scan_to_next_token`).

    PyYAML raises plain ``ValueError``, ``KeyError`` or ``IndexError`` for a value it
    resolved (or was told with ``!!int``) to be of a type the text is not, such as a topic
    ``2025-02-29`` YAML reads as a date that does not exist. The message names the type,
    never the text, which may be a password.
    """

    def scan_to_next_token(self) -> None:
        """PyYAML's, but for tabs between the tokens inside ``[...]`` and ``{...}``, which
        YAML allows there, as JSON does anywhere: a JSON file indented with tabs (as
        ``json.dumps(indent="\\t")`` and many editors write it) was a syntax error. A tab
        still cannot indent a block."""
        if self.index == 0 and self.peek() == "\ufeff":
            self.forward()
        while True:
            while self.peek() == " " or (self.flow_level and self.peek() == "\t"):
                self.forward()
            if self.peek() == "#":
                while self.peek() not in "\0\r\n\x85\u2028\u2029":
                    self.forward()
            if not self.scan_line_break():  # type: ignore[no-untyped-call]  # (types-PyYAML)
                return
            if not self.flow_level:
                self.allow_simple_key = True

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError):
            kind = _TAG_KINDS.get(node.tag, node.tag.replace("tag:yaml.org,2002:", "!!"))
            raise yaml.constructor.ConstructorError(
                problem=f"YAML reads this value as {kind}, but it is not a valid one "
                "(quote it if it is text)",
                problem_mark=node.start_mark,
            ) from None


def _decoded(data: bytes) -> str:
    """The text of a YAML file: UTF-8, or UTF-16 behind its byte order mark (YAML
    readers take both; Windows PowerShell writes UTF-16). ``ValueError`` says where a
    byte is not UTF-8, by line and column rather than by offset in the file."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ValueError("not UTF-16 text, as its byte order mark says") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        raise ValueError(
            f"byte 0x{data[exc.start]:02x} at line {line}, column {column} is not UTF-8 "
            "(save the file as UTF-8)"
        ) from None


def _looks_like_path(source: str) -> bool:
    return "\n" not in source and source.strip().endswith(_FILE_SUFFIXES)


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


_KEY_BEFORE = re.compile(r"""['"]?([^\s{}\[\],#'"]+)['"]?\s*:(?=\s|$)""")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _syntax_problem(exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
    problem = exc.problem or "invalid YAML"
    if mark is not None and _after_secret_key(mark):
        # YAML quotes what it stumbled on (an alias, a tag, a character): here a secret's
        problem = _QUOTED.sub(HIDDEN, problem)
    context = f" ({exc.context})" if exc.context else ""
    return where, f"YAML syntax error: {problem}{context}"


def _after_secret_key(mark: yaml.Mark) -> bool:
    """Whether a key that may hold a secret comes before ``mark`` on its line, or, when
    nothing does, on the last line above that holds anything (a value below its key)."""
    text = mark.buffer or ""
    end = mark.pointer
    while True:
        line_start = text.rfind("\n", 0, end) + 1
        before = text[line_start:end]
        if before.strip() or line_start == 0:
            return any(may_hold_secret(key) for key in _KEY_BEFORE.findall(before))
        end = line_start - 1


def _character_problem(exc: yaml.reader.ReaderError, text: str) -> Problem:
    """The line and column of a character YAML refuses anywhere (text holds no marks yet)."""
    line = text.count("\n", 0, exc.position) + 1
    column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
    return (
        f"line {line}, column {column}",
        f"YAML syntax error: character #x{exc.character:04x} is not allowed in YAML",
    )


def _duplicate_keys(node: yaml.Node, path: list[int | str], seen: set[int]) -> list[Problem]:
    """Keys given twice in one mapping, at any depth, with the line of the first."""
    problems: list[Problem] = []
    if id(node) in seen:  # an alias of a node already checked (or a recursive one)
        return problems
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = key_node.value
            if key in first_line:
                problems.append(
                    (
                        format_path([*path, key]),
                        f"duplicate key (line {key_node.start_mark.line + 1}; "
                        f"first on line {first_line[key]})",
                    )
                )
            else:
                first_line[key] = key_node.start_mark.line + 1
            problems += _duplicate_keys(value_node, [*path, key], seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _duplicate_keys(item, [*path, index], seen)
    return problems


def check_config(
    path: str | os.PathLike[str],
    env: Mapping[str, str],
    settings_check: SettingsCheck | None = None,
) -> list[str]:
    """Every problem of the configuration file at ``path``, as printable lines.

    Empty when the configuration is valid, its agent classes import and the lanes its
    sources and sinks name exist (which imports the agents' modules). When other keys
    are wrong, the classes of the agents whose own entries are valid are imported all
    the same, so a missing class is named in the same pass, and so are the lanes and
    publish names when the wrong keys are in parts those checks do not read. This is what
    ``swimstream check`` prints (with the Kafka connector's ``settings_check``).
    """
    try:
        resolve_agents(load_config_file(path, env, settings_check))
    except ConfigError as exc:
        return problem_lines(exc.problems)
    return []


def load_config_file(
    path: str | os.PathLike[str],
    env: Mapping[str, str],
    settings_check: SettingsCheck | None = None,
) -> AppConfig:
    """:func:`load_config` of the file at ``path``, whose :class:`ConfigError` also names
    the class problems of the agents whose own entries are valid.

    ``swimstream run`` loads its file with this, as ``check`` does, so both report the
    same problems: ``run`` named only the first problem of keys and left an agent class
    that does not import for the next try.
    """
    # Read once: the checks beside take the same document, and a pipe (`--config
    # <(envsubst < app.yaml)`, /dev/stdin) gives its text only once.
    document, duplicates = _read_document(Path(path))
    try:
        return _validated(document, duplicates, env, settings_check)
    except ConfigError as exc:
        if not isinstance(document, Mapping):
            raise
        beside = _class_problems_beside(document, env, exc.problems)
        beside += _joined_problems_beside(document, env, exc.problems, exc.problems + beside)
        if not beside:
            raise
        raise ConfigError(problems=exc.problems + beside) from None


def _class_problems_beside(
    document: Mapping[str, Any], env: Mapping[str, str], found: list[Problem]
) -> list[Problem]:
    """The class problems of the agents whose own entries are valid, in a configuration
    with problems elsewhere: a missing class is then reported in the same pass, not
    after the other keys are fixed. (The lanes sources and sinks name wait for the keys
    they depend on: :func:`_joined_problems_beside`.)
    """
    agents = substitute(document, env)[0].get("agents")
    if not isinstance(agents, Mapping):
        return []
    valid: dict[str, AgentConfig] = {}
    for name, entry in agents.items():
        if not isinstance(name, str):
            continue
        prefix = format_path(["agents", name])
        if any(_is_under(problem_path, prefix) for problem_path, _ in found):
            continue
        try:
            valid[name] = AgentConfig.model_validate(entry)
        except ValidationError:
            continue
    return import_agent_classes(valid)[1]


_APART = ("processing", "mesh", "store", "web", "dead_letter", "broker.settings")
"""The parts of a configuration that the checks joining agents, sources and sinks never
read, so that a problem there need not hold those checks back."""


def _joined_problems_beside(
    document: Mapping[str, Any],
    env: Mapping[str, str],
    found: list[Problem],
    reported: list[Problem],
) -> list[Problem]:
    """The problems of the checks that join agents, sources and sinks (the lanes sources
    and sinks name, the names classes pass to ``self.publish``) in a configuration whose
    problems all lie in parts those checks do not read (:data:`_APART`), each part left
    at its default for them: a typo under ``processing`` hid an unknown source lane until
    it was fixed. A problem anywhere else still holds them back: which agent a source
    reaches depends on it. ``reported`` problems are not named again, and none is named
    under the parts apart: the checks that report there (ports, durability, the
    assignor) would judge a part the user wrote by its defaults.
    """
    parts = set()
    for problem_path, _ in found:
        part = next((part for part in _APART if _is_under(problem_path, part)), None)
        if part is None:
            return []
        parts.add(part)
    trimmed = {key: value for key, value in document.items() if key not in parts}
    if "broker.settings" in parts:
        broker = trimmed.get("broker")
        if not isinstance(broker, Mapping):
            return []
        trimmed["broker"] = {key: value for key, value in broker.items() if key != "settings"}
    try:
        resolve_agents(parse_config(trimmed, env))
    except ConfigError as exc:
        return [
            problem
            for problem in exc.problems
            if problem not in reported and not any(_is_under(problem[0], p) for p in _APART)
        ]
    return []


def problem_lines(problems: list[Problem]) -> list[str]:
    """``(path, message)`` pairs as ``path: message`` lines (the message alone at the root)."""
    return [f"{path}: {message}" if path else message for path, message in problems]
