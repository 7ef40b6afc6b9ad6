"""Cell towers and the devices attached to them: the example app.

Three levels of agents linked into a graph that follows the data: each ``Device`` twin
reports to the tower it is attached to, each ``Tower`` joins its devices' status and
keeps a summary, and ``World`` joins every tower's summary into one live view. A device
that moves to another tower leaves the old tower's join and enters the new one.
"""

from examples.towers.app import HOT_TEMPERATURE, Device, Tower, World

ROUTES = {"/device/:id": Device, "/tower/:id": Tower, "/world": World}

__all__ = ["HOT_TEMPERATURE", "ROUTES", "Device", "Tower", "World"]
