"""The one exception tree of swimstream.

Every error swimstream raises on purpose derives from :class:`SwimstreamError`, so an
application can catch the library's failures with one ``except`` and let its own bugs
through. Errors of the libraries underneath (confluent-kafka, pulsar-client, grpc,
sqlite3, msgpack) are translated where they cross into swimstream, with ``raise ... from
exc`` so the original stays in the traceback.

This module is a leaf: it imports nothing, so the pure protocol layers (``crdt``,
``warp``) may depend on it without depending on the runtime.

The tree::

    SwimstreamError
    ├── CodecError              bytes that do not decode to a known op or snapshot
    ├── DefinitionError         an agent class or lane declared wrongly (raised at class definition)
    ├── RoutingError            no route matches a node URI, or a lane does not exist
    │   ├── NodeNotFoundError
    │   ├── LaneNotFoundError
    │   └── RecordRoutingError  a broker record its source's route cannot place (dead-lettered)
    ├── RecordDecodeError       a record whose value is not in its source's format (dead-lettered)
    ├── InvalidRouteError       a route pattern or template that does not parse, or overlaps another
    ├── ClosedResourceError     a downlink, plane or timer used after it was closed
    ├── CallbackError           a user callback raised (or a lane refused a command); names the site
    ├── BrokerError             a broker could not be started, reached or used
    ├── StoreError              the local state store is unreadable, corrupt or unwritable
    │   ├── StoreWriteError     a write refused without damage (a full disk)
    │   └── StoreLockedError    held locked by another process: kept, the start stops
    └── ConfigError             a configuration value is missing or wrong; names the key path
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


class SwimstreamError(Exception):
    """Root of every error swimstream raises on purpose."""


class CodecError(SwimstreamError):
    """Bytes that should hold an encoded op or snapshot do not decode to one."""


class DefinitionError(SwimstreamError, TypeError):
    """An agent class or one of its lanes is declared wrongly.

    Raised when the class is defined, not when the first event arrives, so a bad
    callback signature fails at import time with the agent and lane named.
    """


class RoutingError(SwimstreamError, LookupError):
    """A node URI or lane that the running agents cannot resolve."""


class NodeNotFoundError(RoutingError):
    """No route pattern matches the node URI."""


class LaneNotFoundError(RoutingError):
    """The agent exists but has no lane of that name."""


class RecordRoutingError(RoutingError):
    """A broker record that its source's route template cannot turn into a node URI.

    The message is the reason (``payload field 'vehicle_id' is missing``); the service
    sends the record to the dead-letter topic with it instead of stopping.
    """


class InvalidRouteError(SwimstreamError, ValueError):
    """A route pattern or template that does not parse, or two patterns that overlap.

    A ``ValueError`` so that configuration validation reports it like any bad value.
    """


class RecordDecodeError(SwimstreamError, ValueError):
    """A consumed record's value is not in its source's format (invalid JSON, no value).

    Like an unroutable record, it goes to the dead-letter topic with this message.
    """


class RecordTooLargeError(RecordDecodeError):
    """A consumed record is larger than the sinks can write.

    Its state and insights could never reach the changelog or an insight topic, and a
    checkpoint that cannot be written stops the instance, again at every restart: the
    record is dead-lettered at the door instead (without its value, which would not fit
    there either; its origin headers say where to find it).
    """


class ClosedResourceError(SwimstreamError):
    """A downlink, plane or timer was used after it was closed."""


LANE_COMMAND = "command"
"""The ``callback`` named when a value, map or counter lane rejects a command itself.

Those lanes apply commands without a user callback, so naming ``on_command`` (the
command lane's callback) would blame code the lane does not have; reports say
"command to lane 'x'" instead (:func:`failure_site`).
"""


LIFECYCLE = "lifecycle"
"""The ``lane`` a failure of ``on_start``, ``on_stop`` or a passivation is counted under."""

TIMER = "timer"
"""The ``lane`` a failing timer callback is counted under (its ``callback``: the method)."""


def failure_site(node_uri: str, lane: str, callback: str) -> str:
    """What failed on which agent, for an error message or a log line.

    Failures are counted by ``(lane, callback)``, where ``lane`` is also
    :data:`LIFECYCLE`, :data:`TIMER` or, for a downlink's callback, the link's
    ``node#lane``; the text names each as what it is: ``on_set of lane 'x' on agent
    /a/1``, ``command to lane 'x' on agent /a/1`` (:data:`LANE_COMMAND`), ``on_start of
    agent /a/1``, ``timer callback tick of agent /a/1``, ``downlink callback s (link to
    /b/1#v) of agent /a/1``.
    """
    if callback == LANE_COMMAND:
        return f"command to lane {lane!r} on agent {node_uri}"
    if lane == LIFECYCLE and callback in ("on_start", "on_stop"):
        return f"{callback} of agent {node_uri}"
    if lane == LIFECYCLE and callback == "passivate":
        return f"passivation of agent {node_uri}"
    if lane == TIMER:
        return f"timer callback {callback} of agent {node_uri}"
    if "#" in lane:  # (never in a lane's name, an identifier)
        return f"downlink callback {callback} (link to {lane}) of agent {node_uri}"
    if callback == f"handle_{lane}":  # a runtime message (a link, a call), not a callback
        return f"{lane} message to agent {node_uri}"
    return f"{callback} of lane {lane!r} on agent {node_uri}"


class CallbackError(SwimstreamError):
    """A user callback raised, or a lane rejected a command; the original exception is
    the ``__cause__``.

    The runtime logs it with the agent and lane, counts it and keeps the agent running:
    the message that triggered the callback ends there, and changes made before the
    exception stand.
    """

    def __init__(self, node_uri: str, lane: str, callback: str) -> None:
        verb = "failed" if callback == LANE_COMMAND else "raised"
        super().__init__(f"{failure_site(node_uri, lane, callback)} {verb}")
        self.node_uri = node_uri
        self.lane = lane
        self.callback = callback


class AgentRestoreError(SwimstreamError):
    """An agent's stored state does not fit its class any more, or cannot be read.

    Usually a code change: a lane whose kind changed (a value lane became a map lane)
    under the same name. The agent stays unloaded and its stored state untouched; what is
    sent to it fails with this error (a record goes to the dead-letter topic with it as
    its reason), and the rest of the instance runs on. Renaming the lane, or restoring
    its old kind, brings the agent back at the next start.
    """


class BrokerError(SwimstreamError):
    """A broker could not be started, reached or used.

    For an embedded broker the message ends with the last lines of its log, so a start-up
    failure on a build machine explains itself without a second run. ``unreachable``
    says the broker did not answer at all (refused, unresolvable, timed out), as opposed
    to answering no: the one failure that waiting can mend, so the service retries it at
    start.
    """

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class StoreError(SwimstreamError):
    """The local state store (SQLite) is unreadable, corrupt or cannot be written.

    The changelog stays the truth: the instance rebuilds from it rather than serve state
    it cannot trust, and reports the fault loudly (health goes red).
    """


class StoreWriteError(StoreError):
    """The local store refused a write without being damaged (a full disk, an I/O
    error): the file still says where its state stands, so it is kept, and the start
    rebuilds its state in memory. Other store errors at start (damage, a store of
    another changelog) are not this one."""


class StoreLockedError(StoreError):
    """Another process held the local store locked past SQLite's wait (a sqlite3 shell
    left in a transaction, a backup tool): the file is sound, so it is neither set
    aside nor rebuilt, and the start stops naming it (a restart tries again)."""


class ConfigError(SwimstreamError, ValueError):
    """A configuration value is missing or invalid; the message names the key path.

    ``problems`` holds every problem found, as ``(path, message)`` pairs such as
    ``("sources[1].route", "unknown placeholder {paylod.id}")``, so a check reports them
    all at once. The string form is one ``path: message`` line per problem.
    """

    def __init__(self, message: str = "", problems: Iterable[tuple[str, str]] = ()) -> None:
        self.problems: list[tuple[str, str]] = list(problems)
        if not self.problems:
            self.problems = [("", message)]
        if not message:
            message = "\n".join(f"{path}: {text}" if path else text for path, text in self.problems)
        super().__init__(message)
