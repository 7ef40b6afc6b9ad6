"""Command lanes: no state, just a callback for each command sent to them.

Sources deliver broker records here, and agents reach each other through them. The
callback may be ``async`` (for I/O); the agent then handles nothing else until it
finishes, which keeps the one-callback-at-a-time rule without locks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from swimstream.agent.lane import F, Lane
from swimstream.crdt import RegisterSet

if TYPE_CHECKING:
    from swimstream.agent.agent import Agent
    from swimstream.agent.context import AgentContext

T = TypeVar("T")


class CommandLane(Lane, Generic[T]):
    """Receives commands; ``on_command(self, value)`` handles each one."""

    kind: ClassVar[str] = "command"
    CALLBACKS: ClassVar[dict[str, tuple[int, bool]]] = {"on_command": (2, True)}

    eager: ClassVar[bool] = False  # bound only when a link watches the commands
    __slots__ = ("_on_command",)

    def on_command(self, fn: F) -> F:
        """Decorate ``fn(self, value)`` (plain or async) to handle each command."""
        return self._register_callback("on_command", fn)

    def _setup(self, context: AgentContext) -> None:
        self._on_command: Callable[..., Any] | None = self._spec.callbacks.get("on_command")

    def _command(self, value: Any) -> Any:
        """Run the handler; returns its coroutine when it is async (the runtime awaits it).

        Linked clients see each command as an event, as in SwimOS (coalesced to the
        latest for a slow client, like a value lane).
        """
        if self._uplinks:
            context = self._agent._context
            self._emit(RegisterSet((context.hlc.now(), context.replica_id), value))
        on_command = self._on_command
        if on_command is None:
            return None
        return on_command(self._agent, value)

    def _unbound_handler(self) -> Callable[[Agent, Any], Any]:
        on_command = self._spec.callbacks.get("on_command")
        return _ignore if on_command is None else on_command


def _ignore(agent: Agent, value: Any) -> None:
    """A command lane without ``on_command``: commands are only seen by its links."""
