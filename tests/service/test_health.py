"""The wording of /healthz and /readyz checks, from a stand-in for the service's state.

ServiceHealth only reads attributes of the service, so plain namespaces stand in for a
started service (which needs a broker) without mocking what is tested.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from swimstream.service.health import ServiceHealth
from swimstream.streams import TopicPartition


def service(runner: Any, checkpoints: int) -> Any:
    stats = SimpleNamespace(checkpoints=checkpoints)
    return SimpleNamespace(
        plane=SimpleNamespace(running=True, active_agents=1),
        durability=SimpleNamespace(
            fault=None, failed=None, checkpointer=SimpleNamespace(stats=stats)
        ),
        failure=None,
        failures=SimpleNamespace(count=0, last_error=None),
        runners=[runner],
        config=SimpleNamespace(sources=[object()]),
    )


def runner(ready: bool, behind: int) -> Any:
    one = TopicPartition("readings", 0)
    connector = SimpleNamespace(connected=True, assignment=lambda: {one})
    return SimpleNamespace(
        name="kafka:readings",
        connector=connector,
        ready=ready,
        paused=False,
        lag=lambda: {one: behind},
    )


def test_one_checkpoint_one_partition_and_one_record_behind_read_in_the_singular() -> None:
    ready = ServiceHealth(service(runner(ready=True, behind=0), checkpoints=1)).readiness()
    assert ready.ok
    assert ready.checks["store"] == "ok (1 checkpoint)"
    assert ready.checks["kafka:readings"] == "1 partition"
    behind = ServiceHealth(service(runner(ready=False, behind=1), checkpoints=2)).readiness()
    assert not behind.ok
    assert behind.checks["store"] == "ok (2 checkpoints)"
    assert behind.checks["kafka:readings"] == "catching up (1 record behind)"


def test_one_undelivered_insight_record_reads_in_the_singular() -> None:
    stand_in = service(runner(ready=True, behind=0), checkpoints=1)
    stand_in.failures = SimpleNamespace(count=1, last_error="timed out")
    health = ServiceHealth(stand_in).health()
    assert not health.ok
    assert health.checks["sinks"] == "1 insight or dead-letter record not delivered: timed out"


def test_catching_up_names_the_partitions_whose_end_is_not_known_yet() -> None:
    """A partition no fetch has told the end of counts for nothing behind, yet keeps
    the instance unready: the check says which, rather than "0 records behind"."""
    held = {TopicPartition("readings", p) for p in range(4)}
    stand_in = runner(ready=False, behind=0)
    stand_in.connector.assignment = lambda: held
    stand_in.lag = lambda: {TopicPartition("readings", 0): 3, TopicPartition("readings", 2): 0}
    readiness = ServiceHealth(service(stand_in, checkpoints=1)).readiness()
    assert not readiness.ok
    assert readiness.checks["kafka:readings"] == (
        "catching up (3 records behind; the end of readings[1, 3] not known yet)"
    )
