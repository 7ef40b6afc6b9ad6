"""The towers example's agents as a YAML ``agents`` section, for tests that run it."""

from typing import Any

from connectors.embedded import free_ports
from tests.support.kafka import QUICK_GROUP_JOIN

TOWERS_AGENTS: dict[str, dict[str, Any]] = {
    "device": {"class": "examples.towers.app:Device", "route": "/device/:id"},
    "tower": {"class": "examples.towers.app:Tower", "route": "/tower/:id"},
    "world": {"class": "examples.towers.app:World", "route": "/world"},
}
"""Copy before changing it (``dict(TOWERS_AGENTS)``): tests share it."""


def alerts_sink(app: str) -> dict[str, str]:
    """The sink the towers example's devices publish their alerts to (``check`` and
    ``run`` refuse the app without it)."""
    return {"publish": "alerts", "topic": f"{app}.alerts"}


def durable_towers_config(bootstrap: str, app: str, store: str, partitions: int) -> dict[str, Any]:
    """A durable towers app on ``{app}.readings`` (keyed by device), with the quick
    group join and free loopback ports: the in-process service tests' app."""
    web, mesh = free_ports(2)
    return {
        "app": app,
        "broker": {
            "kind": "kafka",
            "bootstrap": bootstrap,
            "partitions": partitions,
            **QUICK_GROUP_JOIN,
        },
        "agents": TOWERS_AGENTS,
        "sources": [{"topic": f"{app}.readings", "route": "/device/{key}", "lane": "reading"}],
        "sinks": [alerts_sink(app)],
        "store": {"path": store},  # durable, exactly-once: the defaults
        "web": {"listen": f"127.0.0.1:{web}"},
        "mesh": {"listen": f"127.0.0.1:{mesh}"},
    }


def pulsar_towers_config(app: str, url: str, topic: str | None = None) -> dict[str, Any]:
    """The towers app on Pulsar at ``url``, fed by ``topic`` (``{app}-readings``), at
    least once on a Shared subscription: pulsar-lite's Key_Shared (the default) now and
    then delivers a message twice (4,001 records in for 4,000 on the topic, 2 runs in
    25), so the tests that count records use Shared."""
    return {
        "app": app,
        "broker": {"kind": "pulsar", "service_url": url, "subscription_type": "shared"},
        "agents": TOWERS_AGENTS,
        "sources": [
            {"topic": topic or f"{app}-readings", "route": "/device/{key}", "lane": "reading"}
        ],
        "sinks": [{"publish": "alerts", "topic": f"{app}-alerts"}],
        "processing": "at-least-once",
    }
