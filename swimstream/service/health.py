"""Health and readiness of an instance, as ``/healthz`` and ``/readyz`` report them.

*Healthy* means the instance is doing its job as configured: the agent scheduler runs,
checkpoints succeed, the local store is in use, and no insight record was lost for good.
When it is not, someone should look, and an orchestrator may restart it. *Ready* means
it serves correct state and should receive traffic: every source is connected to its
broker, holds partitions and has caught up with them once. Lag after that, partitions a
rebalance brings with a backlog among it, leaves it ready: after a crash shares an
instance's partitions out, readiness that waited for their backlogs would take every
other instance out of the load balancer at once. A broker that stops answering makes
the instance unready (not unhealthy): it retries, and readiness comes back with the
broker. A broken local store makes it unhealthy (not unready): it serves state rebuilt
from the changelog, which is right.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from swimstream.streams.connector import TopicPartition
from swimstream.text import counted, partition_list
from swimstream.web import HealthReport

if TYPE_CHECKING:
    from swimstream.service.app import Service


class ServiceHealth:
    """The service's HealthProvider for the web server."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def health(self) -> HealthReport:
        service = self._service
        checks: dict[str, str] = {}
        ok = True
        plane = service.plane
        if plane is None or not plane.running:
            checks["agents"] = "the agent scheduler is not running"
            ok = False
        else:
            checks["agents"] = f"{plane.active_agents} active"
        durability = service.durability
        if durability is not None:
            if durability.fault is not None:
                checks["store"] = durability.fault
                ok = False
            elif durability.failed is not None:
                checks["store"] = f"checkpoints failed: {durability.failed}"
                ok = False
            else:
                stats = durability.checkpointer.stats if durability.checkpointer else None
                made = stats.checkpoints if stats else 0
                checks["store"] = f"ok ({counted(made, 'checkpoint')})"
        if service.failure is not None:
            checks["service"] = f"stopping after a failure: {service.failure}"
            ok = False
        lost = service.failures.count
        if lost:
            undelivered = counted(lost, "insight or dead-letter record")
            checks["sinks"] = f"{undelivered} not delivered: {service.failures.last_error}"
            ok = False
        else:
            checks["sinks"] = "ok"
        return HealthReport(ok=ok, checks=checks)

    def readiness(self) -> HealthReport:
        service = self._service
        checks: dict[str, str] = {}
        ok = service.plane is not None and bool(service.runners or not service.config.sources)
        for runner in service.runners:
            connector = runner.connector
            if not connector.connected:
                checks[runner.name] = "broker unreachable; retrying"
                ok = False
            elif not connector.assignment():
                checks[runner.name] = "waiting for partitions"
                ok = False
            elif not runner.ready:
                checks[runner.name] = _catching_up(runner.lag(), connector.assignment())
                ok = False
            else:
                paused = " (paused for backpressure)" if runner.paused else ""
                checks[runner.name] = f"{counted(len(connector.assignment()), 'partition')}{paused}"
        # A store fault makes the instance unhealthy (someone must look) but not unready:
        # it serves state rebuilt from the changelog, which is right.
        plane = service.plane
        if plane is None or not plane.running or service.failure is not None:
            ok = False
        if not service.started_at and service.starting is not None:
            # (the sources open once the full port took over: a broker silent then is
            # waited for, and said)
            checks["start"] = service.starting.step
            ok = False
        return HealthReport(ok=ok, checks={**self.health().checks, **checks})


def _catching_up(lag: Mapping[TopicPartition, int], held: Collection[TopicPartition]) -> str:
    """How far a source is from caught up: records behind, and the partitions whose end
    no fetch has told yet (they count for nothing behind, but readiness waits for them)."""
    line = f"catching up ({counted(sum(lag.values()), 'record')} behind"
    unknown = [tp for tp in held if tp not in lag]
    if unknown:
        line += f"; the end of {partition_list(unknown)} not known yet"
    return line + ")"
