"""What a route may name: an agent class, not the base class agents are written with.

``swimstream.Agent`` declares no lanes; routed to, it would take commands only to
refuse every one for a lane it lacks. It says it is a base by setting ``__swim_base__``
in its own body, and :func:`is_base_class` reads that mark from the class's own
namespace, so subclasses (which do not set it) are agent classes again.

The rule lives here because both places that take routes need it and this is the layer
both may import: the configuration check (``swimstream check``, ``swimstream run``), which
must not import the agent layer, and the plane, which may be built directly. Reading
the mark alone keeps routing free of the agent layer too.
"""

from __future__ import annotations


def is_base_class(cls: type) -> bool:
    """Whether ``cls`` is a base to subclass (``swimstream.Agent``), refused as a route's class."""
    return bool(vars(cls).get("__swim_base__", False))
