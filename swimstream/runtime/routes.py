"""The plane's routes: agent classes by route pattern, checked when the plane is made.

A route that maps to anything but an agent class, or to ``Agent`` itself (a base to
subclass, which declares no lanes), is refused at once, naming the route, rather than at
the first record for it. Kept apart from the plane, whose module holds addressing,
messages and links.
"""

from __future__ import annotations

from collections.abc import Mapping

from swimstream.agent import Agent
from swimstream.errors import DefinitionError
from swimstream.routing import RouteTable, is_base_class


def agent_routes(routes: Mapping[str, type[Agent]]) -> RouteTable[type[Agent]]:
    """The route table of ``routes`` (pattern text -> agent class).

    Raises:
        DefinitionError: a route maps to something other than a subclass of ``Agent``.
    """
    table: RouteTable[type[Agent]] = RouteTable()
    for text, cls in routes.items():
        if not (isinstance(cls, type) and issubclass(cls, Agent)):
            raise DefinitionError(f"route {text!r} must map to an Agent subclass, got {cls!r}")
        if is_base_class(cls):
            name = cls.__qualname__
            raise DefinitionError(
                f"route {text!r} maps to {name}, the base class of agents, not an agent: "
                f"route to a subclass of {name} that declares the lanes"
            )
        table.add(text, cls)
    return table
