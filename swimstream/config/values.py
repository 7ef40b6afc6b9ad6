"""The value types configuration fields share: durations, addresses, names, topics.

Each is an ``Annotated`` type whose validator turns the YAML value into the form the
service uses (a duration into float seconds, a route into a parsed pattern) or raises
``ValueError`` with a message that reads well after the key path. Each also carries a
:class:`TypeDoc`, the phrase the generated configuration reference shows for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, PlainSerializer, PlainValidator
from pydantic import BaseModel as _BaseModel
from pydantic_core import PydanticCustomError

from swimstream.config.env import Substituted
from swimstream.config.problems import shown_value
from swimstream.routing import RoutePattern, RouteTemplate


class FrozenModel(_BaseModel):
    """Base of every configuration part: immutable, and strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class TypeDoc:
    """How the configuration reference names a field's type (``Annotated`` metadata)."""

    text: str


# ``Field(json_schema_extra={DEFAULT_DOC: ...})``: the default as the reference shows it,
# for defaults computed from other values.
DEFAULT_DOC = "swimstream_default"


_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|m|h)?\s*", re.ASCII)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """``100ms``, ``5s``, ``2m``, ``1h`` or a bare number of seconds, as float seconds.

    The result is finite: ``.inf``, ``.nan`` and numbers too large for a float are refused.
    """
    seconds = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float
            seconds = math.inf
    elif isinstance(value, str):
        found = _DURATION.fullmatch(value)
        if found is not None:
            seconds = float(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    if seconds is not None and math.isfinite(seconds):
        return seconds
    raise ValueError(
        "expected a duration such as 100ms, 5s, 2m or 1h (a bare number is seconds), "
        f"got {shown_value(value)}"
    )


def _strict_bool(value: Any) -> Any:
    # pydantic alone would take 0, 1, "no", "off"... for a boolean: a YAML typo or a
    # number in the wrong place would pass unnoticed. Only the environment gives text.
    if isinstance(value, bool):
        return value
    if isinstance(value, Substituted):
        return str(value)  # pydantic parses true/false, 1/0, yes/no, on/off
    raise PydanticCustomError("bool_type", "Input should be a valid boolean")


def _strict_int(value: Any) -> Any:
    # pydantic alone would take true as 1: `partitions: yes` would give one partition.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if isinstance(value, Substituted):
        return str(value)
    return value


_PORT = re.compile(r"[0-9]{1,5}")


def _is_port(text: str) -> bool:
    # ASCII digits only: str.isdigit() also takes '²' and other scripts' digits
    return _PORT.fullmatch(text) is not None and int(text) <= 65535


def split_address(address: str, *, example: str | None = None) -> tuple[str, int]:
    """``host:port`` (or ``[v6 address]:port``) as a host and a port number.

    ``example``, named in the error, is an address of the key being checked: the mesh
    and the web listen on different ports, and a wrong port in the example is a trap.
    """
    host, colon, port = address.rpartition(":")
    valid = bool(colon and host and _is_port(port))
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not valid or not host or any(ch.isspace() or ch in "/[]" for ch in host):
        such_as = f", such as {example}" if example else ""
        raise ValueError(f"expected host:port{such_as}, got {address!r}")
    return host, int(port)


def _listen_check(example: str) -> Callable[[str], str]:
    def check(address: str) -> str:
        split_address(address, example=example)
        return address

    return check


_UNSPECIFIED_HOSTS = frozenset({"0.0.0.0", "::", "*"})


def _check_peer(address: str) -> str:
    host, port = split_address(address, example="10.0.0.2:7001")
    if host in _UNSPECIFIED_HOSTS:
        raise ValueError(f"{address!r} is not an address other instances can dial")
    if port == 0:
        raise ValueError(f"{address!r} needs a real port, not 0")
    return address


def _check_bootstrap(value: str) -> str:
    servers = [server.strip() for server in value.split(",")]
    for server in servers:
        _, _, hostport = server.rpartition("://")
        host, colon, port = hostport.rpartition(":")
        if not colon:
            host, port = hostport, "9092"
        if not host or not _is_port(port) or any(ch.isspace() for ch in host):
            raise ValueError(f"expected host:port[,host:port...], got {value!r}")
    return ",".join(servers)


def _check_pulsar_url(value: str) -> str:
    scheme, separator, rest = value.partition("://")
    if not separator or scheme not in ("pulsar", "pulsar+ssl", "http", "https") or not rest:
        raise ValueError(f"expected a URL such as pulsar://localhost:6650, got {value!r}")
    return value


_NAME = re.compile(r"[A-Za-z0-9._\-]{1,200}")
_TOPIC = re.compile(r"[A-Za-z0-9._\-:/]{1,512}")
_KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._\-]{1,249}")
_CLASS_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][\w.]*")


def is_name(value: str) -> bool:
    """Whether ``value`` may name an app or an agent (and so a consumer group and topics)."""
    return _NAME.fullmatch(value) is not None


def _check_name(value: str) -> str:
    if not is_name(value):
        raise ValueError(f"{value!r} must be 1-200 letters, digits, '.', '_' or '-'")
    return value


def _check_topic(value: str) -> str:
    if _TOPIC.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a topic name")
    return value


def is_kafka_topic(name: str) -> bool:
    """Whether Kafka accepts ``name`` as a topic name."""
    return _KAFKA_TOPIC.fullmatch(name) is not None and name not in (".", "..")


_PULSAR_DOMAINS = ("persistent", "non-persistent")


def is_pulsar_topic(name: str) -> bool:
    """Whether the Pulsar client accepts ``name`` as a topic name, as pulsar-client 3.13
    parses it: ``name``, ``tenant/namespace/name``, or behind a domain
    (``persistent://``, ``non-persistent://``) ``tenant/namespace/name`` or the older
    ``tenant/cluster/namespace/name``. The client refuses any other before it asks the
    broker, so a sink's topic would fail its first record, and the service with it."""
    domain, qualified, rest = name.partition("://")
    if not qualified:
        parts = name.split("/")
        return len(parts) in (1, 3) and all(parts)
    parts = rest.split("/", 3)  # (the last part of the older form may hold slashes)
    return domain in _PULSAR_DOMAINS and len(parts) in (3, 4) and all(parts)


def _check_lane(value: str) -> str:
    if not (value.isidentifier() and value.isascii()):
        raise ValueError(f"lane name {value!r} is not an identifier")
    return value


def _check_class_path(value: str) -> str:
    if _CLASS_PATH.fullmatch(value) is None:
        raise ValueError(
            f"expected 'module:Class', such as examples.traffic:Vehicle, got {value!r}"
        )
    return value


def _parse_pattern(value: Any) -> RoutePattern:
    if isinstance(value, RoutePattern):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a route pattern such as /vehicle/:id, got {value!r}")
    return RoutePattern.parse(str(value))  # (a plain str, also when it was substituted)


def _parse_template(value: Any) -> RouteTemplate:
    if isinstance(value, RouteTemplate):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a route template such as /vehicle/{{key}}, got {value!r}")
    return RouteTemplate.parse(str(value))


Boolean = Annotated[bool, BeforeValidator(_strict_bool)]
"""``true`` or ``false`` from YAML; text (``"true"``, ``"0"``) only from ``${VAR}``."""
Integer = Annotated[int, BeforeValidator(_strict_int)]
"""An integer, never a boolean (``yes`` is not 1)."""
Duration = Annotated[
    float, BeforeValidator(parse_duration), TypeDoc("duration (`250ms`, `5s`, `2m`, `1h`)")
]
MeshListenAddress = Annotated[
    str, AfterValidator(_listen_check("0.0.0.0:7001")), TypeDoc("host:port")
]
WebListenAddress = Annotated[
    str, AfterValidator(_listen_check("0.0.0.0:9001")), TypeDoc("host:port")
]
PeerAddress = Annotated[str, AfterValidator(_check_peer), TypeDoc("host:port")]
BootstrapServers = Annotated[
    str, AfterValidator(_check_bootstrap), TypeDoc("host:port[,host:port...]")
]
PulsarUrl = Annotated[str, AfterValidator(_check_pulsar_url), TypeDoc("URL (`pulsar://host:6650`)")]
Name = Annotated[str, AfterValidator(_check_name), TypeDoc("name (letters, digits, `._-`)")]
TopicName = Annotated[str, AfterValidator(_check_topic), TypeDoc("topic name")]
LaneName = Annotated[str, AfterValidator(_check_lane), TypeDoc("lane name")]
ClassPath = Annotated[str, AfterValidator(_check_class_path), TypeDoc("`module:Class`")]
RoutePatternField = Annotated[
    RoutePattern,
    PlainValidator(_parse_pattern),
    PlainSerializer(str, return_type=str),
    TypeDoc("route pattern (`/vehicle/:id`)"),
]
RouteTemplateField = Annotated[
    RouteTemplate,
    PlainValidator(_parse_template),
    PlainSerializer(str, return_type=str),
    TypeDoc("route template (`/vehicle/{key}`)"),
]
