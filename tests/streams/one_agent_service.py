"""A service of one agent class on a real embedded Kafka broker, started and ready.

The sink tests each run the same shape of app (one source topic feeding one route's
lane, one sink); this starts it on a fresh Tansu broker and stops it afterwards, so a
test states only what differs: the agent, its source and sink, and what it checks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from connectors.embedded import EmbeddedKafka, free_ports
from connectors.factory import open_connectors
from swimstream.config import parse_config
from swimstream.service import Service
from tests.support.kafka import QUICK_GROUP_JOIN
from tests.support.waiting import wait_until


@asynccontextmanager
async def one_agent_service(
    broker: EmbeddedKafka,
    app: str,
    agent: str,
    route: str,
    source: Mapping[str, Any],
    sink: Mapping[str, Any],
    **sections: Any,
) -> AsyncIterator[Service]:
    """Run app ``app`` whose agents are class ``agent`` (``module:Class``) at ``route``,
    fed by ``source`` and writing ``sink``, state in memory; ``sections`` are more of
    the config (``processing={...}``). Yields the service once its sources are ready;
    stops and closes it on the way out."""
    web, mesh = free_ports(2)
    config = {
        "app": app,
        "broker": {
            "kind": "kafka",
            "bootstrap": broker.bootstrap,
            "partitions": 1,
            **QUICK_GROUP_JOIN,
        },
        "agents": {"agent": {"class": agent, "route": route}},
        "sources": [dict(source)],
        "sinks": [dict(sink)],
        "store": {"durable": False},
        "web": {"listen": f"127.0.0.1:{web}"},
        "mesh": {"listen": f"127.0.0.1:{mesh}"},
        **sections,
    }
    service = Service(parse_config(config, {}), open_connectors)
    await service.start()
    try:
        await wait_until(lambda: all(r.ready for r in service.runners), 30)
        yield service
    finally:
        service.stop()
        await service.close()
