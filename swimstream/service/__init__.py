"""The long-running service: an app config, its broker clients, agents and web server."""

from swimstream.service.app import Service, instance_id_for
from swimstream.service.stoppable import StoppedStarting
from swimstream.service.wiring import ConnectorFactory, ProtocolClients

__all__ = [
    "ConnectorFactory",
    "ProtocolClients",
    "Service",
    "StoppedStarting",
    "instance_id_for",
]
