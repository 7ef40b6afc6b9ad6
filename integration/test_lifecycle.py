"""Lifecycle under load: SIGTERM drains, a frozen broker, a slow agent."""

from __future__ import annotations

import itertools
import json
import re
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from connectors.embedded import EmbeddedKafka, free_ports
from integration.support import Instance, json_value, wait_until
from tests.support.kafka import produce_json, read_topic


def ledger_config(
    bootstrap: str, app: str, agent: str = "Ledger", lane: str = "entry"
) -> dict[str, Any]:
    return {
        "app": app,
        "broker": {"kind": "kafka", "bootstrap": bootstrap, "partitions": 4},
        "agents": {"account": {"class": f"integration.apps:{agent}", "route": "/account/:id"}},
        "sources": [{"topic": f"{app}.entries", "route": "/account/{key}", "lane": lane}],
        "sinks": [{"publish": "processed", "topic": f"{app}.processed"}],
        "processing": "at-least-once",
    }


def entries(start: int, count: int, accounts: int = 50) -> list[tuple[str, dict[str, Any]]]:
    return [(str(seq % accounts), {"seq": seq}) for seq in range(start, start + count)]


def processed_seqs(kafka: EmbeddedKafka, app: str) -> list[int]:
    return [json_value(m)["seq"] for m in read_topic(kafka.bootstrap, f"{app}.processed")]


def test_sigterm_under_load_exits_0_quickly_and_a_restart_skips_nothing(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance]
) -> None:
    app = "life-sigterm"
    total = 40_000
    kafka_broker.create_topic(f"{app}.entries", partitions=4)
    first = start_instance(ledger_config(kafka_broker.bootstrap, app))
    producer = threading.Thread(
        target=lambda: [
            produce_json(kafka_broker.bootstrap, f"{app}.entries", entries(chunk, 2_000))
            for chunk in range(0, total, 2_000)
        ]
    )
    producer.start()
    wait_until(lambda: first.metric("swimstream_records_in_total") > 5_000, 60, "load")
    started = time.monotonic()
    first.signal(signal.SIGTERM)
    assert first.wait_exit(timeout=12) == 0, first.log_tail()
    assert time.monotonic() - started <= 10.0
    producer.join()

    second = start_instance(ledger_config(kafka_broker.bootstrap, app), name="restarted")
    wait_until(
        lambda: len(set(processed_seqs(kafka_broker, app))) >= total, 90, "every record's effect"
    )
    seen = processed_seqs(kafka_broker, app)
    assert set(seen) == set(range(total))
    print(f"at-least-once across a SIGTERM restart: {len(seen) - total} records processed twice")
    second.stop()


def test_a_second_sigint_while_draining_lets_the_drain_finish(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance]
) -> None:
    """Ctrl-C pressed twice: the second one came after the signal handlers were gone,
    raised KeyboardInterrupt inside the drain (no final checkpoint, no flush, no
    "stopped") and still exited 0, as if the drain had finished."""
    app = "life-twice"
    kafka_broker.create_topic(f"{app}.entries", partitions=4)
    instance = start_instance(ledger_config(kafka_broker.bootstrap, app, agent="Lingering"))
    assert instance.request("POST", "/account/a?lane=entry", {"seq": 0})[0] == 200
    instance.signal(signal.SIGINT)
    wait_until(lambda: "stopping: draining" in instance.log_tail(), 5, "the drain")
    time.sleep(0.5)  # the drain is in the agent's two-second on_stop
    instance.signal(signal.SIGINT)
    assert instance.wait_exit(timeout=12) == 0, instance.log_tail()
    log = instance.log_tail()
    assert '"message": "stopped"' in log.splitlines()[-1], log
    assert "SIGINT again: the drain goes on" in log


@pytest.mark.parametrize(
    ("guarantee", "frozen"),
    [("at-least-once", 10), ("exactly-once", 20)],  # (a checkpoint's commit waited 10 s)
)
def test_a_frozen_broker_makes_the_instance_unready_then_it_resumes_losing_nothing(
    kafka_broker: EmbeddedKafka,
    start_instance: Callable[..., Instance],
    guarantee: str,
    frozen: int,
) -> None:
    app = f"life-frozen-{guarantee}"
    kafka_broker.create_topic(f"{app}.entries", partitions=4)
    instance = start_instance(
        {**ledger_config(kafka_broker.bootstrap, app), "processing": guarantee}
    )
    produce_json(kafka_broker.bootstrap, f"{app}.entries", entries(0, 3_000))
    wait_until(lambda: instance.metric("swimstream_records_in_total") >= 3_000, 60, "first batch")
    kafka_broker.pause()
    try:
        wait_until(lambda: instance.request("GET", "/readyz")[0] == 503, 15, "/readyz to turn 503")
        time.sleep(frozen)  # frozen for (at least) that long in all
        assert instance.request("GET", "/healthz")[0] == 200  # unready, not dead
        instance._check_alive()
    finally:
        kafka_broker.resume()
    wait_until(lambda: instance.request("GET", "/readyz")[0] == 200, 60, "/readyz back to 200")
    produce_json(kafka_broker.bootstrap, f"{app}.entries", entries(3_000, 3_000))
    wait_until(
        lambda: len(set(processed_seqs(kafka_broker, app))) >= 6_000, 60, "every record's effect"
    )
    assert set(processed_seqs(kafka_broker, app)) == set(range(6_000))


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_sigterm_while_the_broker_is_frozen_exits_0_in_time_and_the_restart_is_exact(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance], guarantee: str
) -> None:
    """With durable state the drain's final checkpoint waited for its commit's own 60 s
    (and the transaction's abort and the producer's close 10 s more each): a SIGTERM
    while the broker was frozen exited 1 some 80 s later, long after the 10 s a
    ``docker stop`` allows. The final checkpoint now gives up at the drain's deadline,
    as a crash would: its offsets were not committed, so the restart replays the
    records since the last committed one, and state is exact."""
    app = f"life-frozen-stop-{guarantee}"
    kafka_broker.create_topic(f"{app}.entries", partitions=4)
    config = {**ledger_config(kafka_broker.bootstrap, app), "processing": guarantee}
    instance = start_instance(config)
    produced = entries(0, 3_000)
    produce_json(kafka_broker.bootstrap, f"{app}.entries", produced)
    wait_until(lambda: instance.metric("swimstream_records_in_total") >= 3_000, 60, "records in")
    produced += entries(3_000, 1_000)  # (some may be in flight as the broker freezes)
    produce_json(kafka_broker.bootstrap, f"{app}.entries", produced[3_000:])
    kafka_broker.pause()
    try:
        time.sleep(1)
        started = time.monotonic()
        instance.signal(signal.SIGTERM)
        assert instance.wait_exit(timeout=30) == 0, instance.log_tail()
        assert time.monotonic() - started <= 10.0, instance.log_tail()
    finally:
        kafka_broker.resume()
    log = instance.log_path.read_text()
    assert "the final checkpoint was not committed within the drain" in log, log

    restarted = start_instance(config, name="restarted")
    counts = {str(account): 0 for account in range(50)}
    for account, _ in produced:
        counts[account] += 1

    def exact() -> bool:
        return all(restarted.lane(f"/account/{a}", "count") == n for a, n in counts.items())

    wait_until(exact, 60, "every account's count exact after the restart")
    assert set(processed_seqs(kafka_broker, app)) == set(range(4_000))


def test_insights_the_broker_never_took_stop_the_instance_and_its_restart_loses_none(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance]
) -> None:
    """A broker frozen for longer than the producer's delivery timeout: the records whose
    insights timed out stay uncommitted. Running on would pause the source for good
    behind them (with red health, which Compose does not act on); the instance stops
    with exit 1 instead, and its restart replays them."""
    app = "life-undelivered"
    total = 8_000
    kafka_broker.create_topic(f"{app}.entries", partitions=4)
    produce_json(kafka_broker.bootstrap, f"{app}.entries", entries(0, total, accounts=4))
    # State in memory: no checkpoint to fail in the record's stead (the durable modes'
    # checkpoints stop the instance too).
    config = {
        **ledger_config(kafka_broker.bootstrap, app, agent="Paced"),
        "store": {"durable": False},
    }
    short = {**config, "broker": {**config["broker"], "settings": {"message.timeout.ms": 2000}}}
    first = start_instance(short, ready=False).wait_serving()
    wait_until(lambda: first.metric("swimstream_insights_out_total") > 2_000, 60, "insights")
    kafka_broker.pause()
    try:
        # The paced agents go on through the records they hold; their insights wait.
        wait_until(lambda: "stopping after a failure" in first.log_path.read_text(), 30, "a stop")
    finally:
        kafka_broker.resume()
    assert first.wait_exit(timeout=30) == 1, first.log_tail()
    lines = first.log_path.read_text().splitlines()
    failed = [line for line in lines if '"logger": "swimstream.sinks"' in line]
    # Every insight in flight failed, but the sinks say so in a line or two.
    assert 1 <= len(failed) <= 2, failed
    assert "an insight record was not delivered" in failed[0], failed
    assert "Message timed out" in failed[0], failed

    second = start_instance(config, name="restarted", ready=False)
    wait_until(
        lambda: len(set(processed_seqs(kafka_broker, app))) >= total, 90, "every record's effect"
    )
    assert set(processed_seqs(kafka_broker, app)) == set(range(total))
    second.stop()


def test_a_slow_agent_pauses_the_partitions_memory_stays_bounded_and_they_resume_at_once(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance]
) -> None:
    app = "life-slow"
    config = ledger_config(kafka_broker.bootstrap, app, agent="Slow", lane="work")
    mailbox, batch = 100, 500
    config["processing"] = {
        "guarantee": "at-least-once",
        "mailbox_capacity": mailbox,
        "max_poll_records": batch,
    }
    kafka_broker.create_topic(f"{app}.entries", partitions=4)
    total = 6_000
    produce_json(
        kafka_broker.bootstrap, f"{app}.entries", [("one", {"seq": n}) for n in range(total)]
    )
    instance = start_instance(config, ready=False)  # ready only once the backlog is done
    process = psutil.Process(instance.process.pid)  # type: ignore[union-attr]
    instance.wait_serving(30)
    wait_until(lambda: instance.metric("swimstream_source_pauses_total") > 0, 30, "a pause")
    peak = process.memory_info().rss
    queued, idle = [], []
    while instance.lane("/account/one", "done") < total:
        peak = max(peak, process.memory_info().rss)
        metrics = instance.metrics()  # one scrape: in flight and lag at one moment
        in_flight, lag = (
            sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))
            for name in ("swimstream_records_in_flight", "swimstream_consumer_lag")
        )
        queued.append(in_flight)
        if not in_flight and lag:
            idle.append(len(queued))
        time.sleep(0.2)
        assert len(queued) < 300, "the slow agent never finished"
    # Every record goes to the one slow agent, so its full mailbox pauses the partitions
    # long before the in-flight bound (max(4 x mailbox, 10k)) would: the source routes
    # a batch only while that mailbox has room, so at most a mailbox and a batch are in
    # flight. Without the pause the source would read the whole backlog at once: the
    # agent gets through some 500 records a second, so thousands would wait.
    assert max(queued) <= mailbox + batch, f"in flight, every 0.2 s: {queued}"
    # And the agent does not wait for records that are there. librdkafka's fetcher
    # noticed a resume only when it next woke by itself, up to a second late: nothing
    # was in flight for 4 samples after every other resume, 16 to 21 in all. A resume
    # now seeks too, which starts the fetch at once: none but by a fluke.
    assert len(idle) <= 4, f"idle while records wait, at samples {idle} of {queued}"
    assert peak < 400 * 2**20, f"rss peaked at {peak / 2**20:.0f} MiB"
    assert instance.metric("swimstream_records_in_total") == total
    wait_until(lambda: instance.request("GET", "/readyz")[0] == 200, 30, "ready, caught up")


def test_a_slow_key_holds_back_its_partition_only_and_nothing_is_lost_or_reordered(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    """One agent stuck on its records fills its mailbox: its partition waits, the other
    partitions' records, produced after that, are all processed meanwhile. The records
    of its partition behind the stuck ones (for other agents) wait too, in order."""
    app = "life-hot"
    config = ledger_config(kafka_broker.bootstrap, app, agent="Gated")
    mailbox = 20
    config["processing"] = {"guarantee": "at-least-once", "mailbox_capacity": mailbox}
    # Without checkpoints: a checkpoint's cut waits for every mailbox to empty, the
    # sources held meanwhile, so with durable state the stuck agent holds every
    # partition at the next checkpoint (see the README on back-pressure).
    config["store"] = {"durable": False}
    kafka_broker.create_topic(f"{app}.entries", partitions=4)
    gate = tmp_path / "gate-open"
    seqs = iter(range(1_000_000))

    def batch(key: str, count: int, **extra: Any) -> list[tuple[str, dict[str, Any]]]:
        return [(key, {"seq": next(seqs), **extra}) for _ in range(count)]

    def count(key: str) -> int:
        """Records the agent of ``key`` processed (none before its first one came)."""
        status, body = instance.request("GET", f"/account/{key}?lane=count")
        return int(body) if status == 200 else 0

    # Partition 0: five records for "before", then the stuck agent's ("hot"), more of
    # them than its mailbox holds, then five for "after", which must wait behind them.
    hot = batch("before", 5) + batch("hot", 3 * mailbox, gate=str(gate)) + batch("after", 5)
    produce_json(kafka_broker.bootstrap, f"{app}.entries", hot, partition=0)
    instance = start_instance(config, ready=False)  # (never caught up while "hot" waits)
    instance.wait_serving(30)
    wait_until(lambda: instance.metric("swimstream_source_pauses_total") > 0, 60, "a pause")

    # Only now the other partitions get records: a source that paused every partition
    # for the full mailbox would not read them until "hot" moved.
    fast = {p: [f"fast-{p}-{n}" for n in range(4)] for p in (1, 2, 3)}
    sent: dict[str, int] = {"before": 5, "hot": 3 * mailbox, "after": 5}
    for partition, keys in fast.items():
        records = [record for _ in range(25) for key in keys for record in batch(key, 1)]
        produce_json(kafka_broker.bootstrap, f"{app}.entries", records, partition=partition)
        sent.update({key: 25 for key in keys})
    fast_keys = [key for keys in fast.values() for key in keys]
    wait_until(
        lambda: all(count(key) == 25 for key in fast_keys),
        60,
        "every record of the other partitions processed while the hot key is stuck",
    )
    assert count("hot") == 0  # (its first record is still held)
    assert count("before") == 5
    assert count("after") == 0, "routed ahead of records before it"
    # The other partitions' records count as in flight until their insights are
    # delivered, a moment after their lanes show them (116 were, once, on a slow CI
    # machine). The stuck partition's records stay in flight for as long as "hot" does:
    # a source that read past the mailbox would hold its 65 there, never fewer.
    wait_until(
        lambda: instance.metric("swimstream_records_in_flight") <= mailbox + 1,
        30,
        "no more of the stuck partition's records in flight than the mailbox holds",
    )
    assert instance.metric("swimstream_records_in_flight") >= 1, "the stuck key's records"

    gate.touch()  # the hot key moves: everything behind it follows
    wait_until(
        lambda: all(count(key) == n for key, n in sent.items()),
        90,
        "every record processed once the hot key moved",
    )
    total = sum(sent.values())
    assert instance.metric("swimstream_records_in_total") == total
    for key in sent:
        assert instance.lane(f"/account/{key}", "reordered") == 0, key
    assert instance.lane("/account/after", "last") == max(v["seq"] for _, v in hot)
    wait_until(
        lambda: sorted(processed_seqs(kafka_broker, app)) == list(range(total)),
        60,
        "each record's insight once",
    )
    wait_until(lambda: instance.request("GET", "/readyz")[0] == 200, 30, "ready, caught up")


def test_ready_only_once_the_backlog_is_read(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance]
) -> None:
    """Right after the group assigns partitions nothing is fetched yet and no partition's
    end is known: that is not "caught up", however empty the first fetch looks."""
    app = "life-backlog"
    backlog = 30_000
    kafka_broker.create_topic(f"{app}.entries", partitions=4)
    produce_json(kafka_broker.bootstrap, f"{app}.entries", entries(0, backlog))
    instance = start_instance(ledger_config(kafka_broker.bootstrap, app), ready=False)
    wait_until(lambda: instance.request("GET", "/readyz")[0] == 200, 60, "ready", 0.02)
    assert instance.metric("swimstream_records_in_total") == backlog
    assert instance.metric("swimstream_consumer_lag") == 0


def logged_at(entry: dict[str, Any]) -> float:
    """When a JSON log line was written, in seconds since the epoch."""
    return datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()


def next_try(line: str) -> int:
    """The seconds a "waiting for the broker" log line says the next try is in."""
    found = re.search(r"next try in (\d+) s\)", line)
    assert found is not None, line
    return int(found[1])


def test_started_before_its_broker_it_waits_with_a_trickle_of_lines_then_works(
    start_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    app = "life-early"
    port = free_ports(1)[0]
    instance = start_instance(ledger_config(f"127.0.0.1:{port}", app), ready=False)
    try:
        wait_until(lambda: "waiting for the broker" in instance.log_tail(), 60, "a waiting line")
        # The port answers meanwhile: alive (an orchestrator must not restart it), not
        # ready, and saying what it waits for.
        assert instance.request("GET", "/healthz")[0] == 200
        status, body = instance.request("GET", "/readyz")
        assert status == 503 and "waiting for the broker" in body["checks"]["start"], body
        status, body = instance.request("GET", "/account/1?lane=count")
        assert status == 503 and "starting" in body["error"], body
        # The instance's tries back off (1, 2, 4, 8 s apart): the broker starts once the
        # fourth has failed, 8 s before the fifth.
        lines: list[str] = []

        def waits() -> list[str]:
            return [line for line in lines if "waiting for the broker" in line]

        def four_tries() -> bool:
            text = instance.log_path.read_text()
            lines[:] = text[: text.rfind("\n") + 1].splitlines()  # (whole lines only)
            return len(waits()) >= 4

        wait_until(four_tries, 60, lambda: "four tries:\n" + "\n".join(lines))
        assert instance.process is not None and instance.process.poll() is None, instance.log_tail()
        # One line a try, each naming the broker and why it failed and announcing the next
        # delay, and each try as late as the one before announced, by the instance's own
        # clock (the 12 s the test used to sleep measured the machine's speed as well): a
        # try every second would come 1 s after the one before.
        assert [next_try(line) for line in waits()] == [1, 2, 4, 8], "\n".join(lines)
        times = [logged_at(json.loads(line)) for line in waits()]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert all(gap > delay - 0.5 for gap, delay in zip(gaps, [1, 2, 4], strict=True)), gaps
        refused = f"cannot reach the Kafka broker at 127.0.0.1:{port} (127.0.0.1:{port}: "
        assert all(refused in line for line in waits()), "\n".join(waits())
        # Nothing else is logged meanwhile (before it: the start's own lines, such as the
        # port answering probes and the first try).
        first = lines.index(waits()[0])
        assert lines[first:] == waits(), "\n".join(lines)
        with EmbeddedKafka(port=port, work_dir=tmp_path / "broker") as early:
            instance.wait_ready(timeout=90)  # it creates its topics once the broker answers
            produce_json(early.bootstrap, f"{app}.entries", entries(0, 500))
            wait_until(lambda: len(processed_seqs(early, app)) >= 500, 60, "processed")
            assert sorted(processed_seqs(early, app)) == list(range(500))
            instance.signal(signal.SIGTERM)
            assert instance.wait_exit(timeout=12) == 0, instance.log_tail()
    finally:
        instance.stop()


def test_stopped_while_waiting_for_its_broker_it_exits_0(
    start_instance: Callable[..., Instance],
) -> None:
    nobody = f"127.0.0.1:{free_ports(1)[0]}"  # no broker ever listens there
    instance = start_instance(ledger_config(nobody, "life-absent"), ready=False)
    wait_until(lambda: "waiting for the broker" in instance.log_tail(), 60, "a waiting line")
    assert "cannot reach the Kafka broker" in instance.log_tail()
    # Said within seconds (a refused connect), not after the client's 10 s timeout: timed
    # by the instance's own log from its first try, not by the test from the process's
    # start, which on a slow machine takes seconds of imports before it tries.
    log = instance.log_path.read_text().splitlines()
    lines = [json.loads(line) for line in log if line.startswith("{")]
    tried = next(e for e in lines if e["message"].startswith("connecting to the broker"))
    said = next(e for e in lines if e["message"].startswith("waiting for the broker"))
    assert logged_at(said) - logged_at(tried) < 8, (tried, said)
    instance.signal(signal.SIGTERM)
    # ... and nothing is in flight: it exits within the drain timeout (8 s by default).
    assert instance.wait_exit(timeout=8) == 0, instance.log_tail()
