"""Partitions handed over between live instances keep their agents' state exact.

Two instances of one durable app share the source partitions as one consumer group. When
a partition moves (a second instance joins, then stops), its new owner must serve its
agents from the partition's changelog, not from whatever its own store and memory held
from an earlier ownership; and under exactly-once, each record's insight is published
once across the moves, because each revoke commits a checkpoint first.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from connectors.embedded import EmbeddedKafka
from integration.support import Instance, json_value, key_text, wait_until
from integration.test_lifecycle import ledger_config
from swimstream.routing import shard_for
from tests.support.kafka import produce_json, read_topic

PARTITIONS = 4
ACCOUNTS = 400
# The app shards agents with murmur2 (its default partitioner); the records must land
# where it looks for them, as a Java producer would put them.
PRODUCER_SETTINGS: dict[str, str | int] = {"partitioner": "murmur2_random"}

Entry = tuple[str, dict[str, Any]]


def handover_config(kafka: EmbeddedKafka, app: str, data: Path, instance_id: str) -> dict[str, Any]:
    config = ledger_config(kafka.bootstrap, app)
    config["broker"] = {**config["broker"], "partitions": PARTITIONS, "static_membership": False}
    config["processing"] = {"guarantee": "exactly-once", "commit_interval": 0.25}
    config["store"] = {"path": str(data)}  # one directory: each file is <instance id>.sqlite
    config["mesh"] = {"listen": "127.0.0.1:0", "instance_id": instance_id}
    return config


class Ledgers:
    """The records produced so far, and the state every account must show for them."""

    def __init__(self, kafka: EmbeddedKafka, topic: str, seed: int) -> None:
        self.kafka = kafka
        self.topic = topic
        self.rng = random.Random(seed)
        self.produced: list[Entry] = []

    def produce(self, count: int) -> None:
        start = len(self.produced)
        batch = [
            (f"acct-{self.rng.randrange(ACCOUNTS)}", {"seq": seq})
            for seq in range(start, start + count)
        ]
        produce_json(self.kafka.bootstrap, self.topic, batch, settings=PRODUCER_SETTINGS)
        self.produced.extend(batch)

    @contextlib.contextmanager
    def streaming(self, per_second: int = 2500) -> Iterator[None]:
        """Produce about ``per_second`` records a second, in batches every 10 ms, from a
        thread with one producer, until the block ends (every one delivered by then)."""
        producer = Producer(
            {"bootstrap.servers": self.kafka.bootstrap, "enable.idempotence": True,
             "linger.ms": 5, **PRODUCER_SETTINGS}
        )  # fmt: skip
        failures: list[KafkaError] = []
        stop = threading.Event()

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        def produce() -> None:
            while not stop.wait(0.01):
                for _ in range(per_second // 100):
                    entry = (f"acct-{self.rng.randrange(ACCOUNTS)}", {"seq": len(self.produced)})
                    producer.produce(
                        self.topic, orjson.dumps(entry[1]), entry[0], on_delivery=delivered
                    )
                    self.produced.append(entry)
                producer.poll(0)

        thread = threading.Thread(target=produce, name="steady-producer")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            assert producer.flush(30) == 0, "records of the steady stream not delivered"
        assert not failures, failures[:3]

    def expected(self) -> dict[str, tuple[int, int]]:
        """account -> (count, last seq)."""
        state: dict[str, tuple[int, int]] = {}
        for account, value in self.produced:
            count, _ = state.get(account, (0, -1))
            state[account] = (count + 1, value["seq"])
        return state


def held_partitions(instance: Instance, topic: str) -> set[int]:
    """The source partitions the instance's consumer holds (those it reports a lag for);
    none while its web port is not open yet."""
    status, text = instance.request("GET", "/metrics")
    if status != 200:
        return set()
    return {
        int(line.split('partition="', 1)[1].split('"', 1)[0])
        for line in str(text).splitlines()
        if line.startswith("swimstream_consumer_lag{") and f'topic="{topic}"' in line
    }


def settled(instances: Iterable[Instance], topic: str) -> bool:
    """Every instance ready, caught up, nothing in flight, and the partitions split
    between them with none left out."""
    held: list[set[int]] = []
    for instance in instances:
        if instance.request("GET", "/readyz")[0] != 200:
            return False
        metrics = instance.metrics()
        lag = sum(v for k, v in metrics.items() if k.startswith("swimstream_consumer_lag"))
        if lag != 0 or metrics.get("swimstream_records_in_flight", 1) != 0:
            return False
        held.append(held_partitions(instance, topic))
    every = [p for partitions in held for p in partitions]
    return sorted(every) == list(range(PARTITIONS))


def owners(instances: list[Instance], topic: str) -> dict[int, Instance]:
    """partition -> the instance that holds it now."""
    return {p: i for i in instances for p in held_partitions(i, topic)}


def wrong_accounts(
    expected: dict[str, tuple[int, int]], owner_of: Callable[[str], Instance]
) -> list[str]:
    """One line per account whose state on its owner differs from the records' effect."""
    wrong = []
    for account, (count, last) in sorted(expected.items()):
        owner = owner_of(account)
        node = f"/account/{account}"
        got = (owner.lane(node, "count"), owner.lane(node, "last"))
        if got != (count, last):
            partition = shard_for(account.encode(), PARTITIONS, "murmur2")
            wrong.append(
                f"{node} on {owner.name} (partition {partition}): "
                f"expected count {count}, last {last}; got count {got[0]}, last {got[1]}"
            )
    return wrong


def check_exact_state(
    step: str, expected: dict[str, tuple[int, int]], owner_of: Callable[[str], Instance]
) -> None:
    """Poll until every account shows its expected state; fail naming the wrong ones."""
    wrong: list[str] = []

    def exact() -> bool:
        wrong[:] = wrong_accounts(expected, owner_of)
        return not wrong

    try:
        wait_until(exact, 60, f"{step}: the exact state of every account", interval=1.0)
    except AssertionError:
        sample = "\n  ".join(wrong[:12])
        raise AssertionError(
            f"{step}: {len(wrong)} of {len(expected)} accounts wrong, e.g.\n  {sample}"
        ) from None


def test_partitions_moved_by_scaling_out_and_in_keep_every_account_exact(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    app = "handover"
    topic = f"{app}.entries"
    kafka_broker.create_topic(topic, partitions=PARTITIONS)
    ledgers = Ledgers(kafka_broker, topic, seed=41)
    data = tmp_path / "data"

    # 1. One instance holds every partition and works through a first batch.
    first = start_instance(handover_config(kafka_broker, app, data, f"{app}-a"), name="a")
    ledgers.produce(20_000)
    partition_of = {
        f"acct-{n}": shard_for(f"acct-{n}".encode(), PARTITIONS, "murmur2") for n in range(ACCOUNTS)
    }
    landed = {key_text(m): m.partition() for m in read_topic(kafka_broker.bootstrap, topic)}
    assert landed == {a: partition_of[a] for a in landed}, "records not where agents are sharded"
    wait_until(lambda: settled([first], topic), 90, "a to process the first batch")
    check_exact_state("1 (a alone)", ledgers.expected(), lambda _: first)

    # 2. Scale out: a second instance joins while records keep coming, so the first goes
    # on checkpointing the partitions it is about to lose after the second read its store
    # and the changelog at start (that tail is what a new owner must not miss).
    second = start_instance(
        handover_config(kafka_broker, app, data, f"{app}-b"), name="b", ready=False
    )
    # A steady stream from one producer: whenever the group revokes, the first has
    # routed records since its last checkpoint, whose insights are in its open
    # transaction (separate produce calls came in bursts half a second apart, and the
    # revokes fell between them).
    with ledgers.streaming():
        deadline = time.monotonic() + 60
        while not held_partitions(second, topic):
            assert second.process is not None and second.process.poll() is None, second.log_tail()
            assert time.monotonic() < deadline, f"b never got a partition\n{second.log_tail()}"
            time.sleep(0.1)
        time.sleep(1.0)  # and some more once the partitions moved
    both = [first, second]
    # 3. Each account exact on the instance that holds its partition now.
    wait_until(lambda: settled(both, topic), 120, "a and b to process the second batch")
    owner = owners(both, topic)
    assert {owner[p] for p in owner} == {first, second}, {p: i.name for p, i in owner.items()}
    print(f"after scale-out: {sorted((p, i.name) for p, i in owner.items())}")
    check_exact_state(
        "3 (after scale-out)", ledgers.expected(), lambda account: owner[partition_of[account]]
    )
    # The other instance neither answers for an account from a copy nor takes a command
    # into one (its change would be checkpointed into a shard it does not write): it
    # names the shard. The owner still serves it.
    account = "acct-1"
    shard = partition_of[account]
    elsewhere = first if owner[shard] is second else second
    for method, body in (("GET", None), ("POST", 1)):
        status, refused = elsewhere.request(method, f"/account/{account}?lane=count", body)
        assert (status, refused.get("shard")) == (421, shard), (method, status, refused)
        assert "another instance holds" in refused["error"], refused
    assert owner[shard].lane(f"/account/{account}", "count") == ledgers.expected()[account][0]

    # 4. Scale in: the second stops cleanly and its partitions go back to the first
    # (whose own are revoked and handed back meanwhile, records still coming).
    with ledgers.streaming():
        second.signal(signal.SIGTERM)
        assert second.wait_exit(timeout=20) == 0, second.log_tail()
        time.sleep(1.0)
    ledgers.produce(10_000)
    wait_until(lambda: settled([first], topic), 120, "a to process the third batch")
    # 5. Every account exact on the first again, over all three batches.
    check_exact_state("5 (after scale-in)", ledgers.expected(), lambda _: first)

    # 6. Every record's insight was published exactly once, read as a read_committed
    # consumer sees them: each revoke committed a checkpoint (state, offsets and the
    # insights of every record routed until then, in one transaction) before the
    # partitions moved, so the next owner started where the committed state ends and
    # replayed nothing the old owner had published. (Tansu would show a read_committed
    # reader the records of an aborted transaction too; none aborts here.)
    counts: Counter[int] = Counter()

    def published() -> bool:
        insights = read_topic(
            kafka_broker.bootstrap, f"{app}.processed", isolation="read_committed"
        )
        counts.clear()
        counts.update(json_value(m)["seq"] for m in insights)
        return len(counts) == len(ledgers.produced)

    try:  # (the last checkpoint's transaction may still be committing)
        wait_until(published, 60, "every record's insight", interval=1.0)
    except AssertionError:
        missing = sorted(set(range(len(ledgers.produced))) - set(counts))
        raise AssertionError(
            f"{len(missing)} records without an insight in {app}.processed, e.g. {missing[:10]}"
        ) from None
    twice = sorted(seq for seq, n in counts.items() if n > 1)
    assert not twice, (
        f"{len(twice)} of {len(ledgers.produced)} records have more than one insight "
        f"({sum(counts.values())} insights), e.g. {[(s, counts[s]) for s in twice[:10]]}"
    )


def test_a_stored_timer_fires_on_the_instance_its_shard_is_assigned_to_only(
    kafka_broker: EmbeddedKafka, start_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    """Timers armed on one instance, stored, then due while two share the partitions:
    every instance used to arm every stored timer at its start, so each alarm rang
    twice, once on an instance that does not own it."""
    app = "alarms"
    topic = f"{app}.arm"
    kafka_broker.create_topic(topic, partitions=PARTITIONS)
    data = tmp_path / "data"

    def config(instance_id: str) -> dict[str, Any]:
        settings = handover_config(kafka_broker, app, data, instance_id)
        settings["agents"] = {"alarm": {"class": "integration.apps:Alarm", "route": "/alarm/:id"}}
        settings["sources"] = [{"topic": topic, "route": "/alarm/{key}", "lane": "arm"}]
        settings["sinks"] = [{"publish": "rang", "topic": f"{app}.rang"}]
        return settings

    alarms = [f"alarm-{n}" for n in range(40)]
    first = start_instance(config(f"{app}-a"), name="a")
    # Due once both run, below, which takes 9 to 11 s from here on this machine (two
    # group joins of 3 s or more, two starts): 30 s leaves room for a machine half as fast.
    arm = ((alarm, {"delay": 30}) for alarm in alarms)
    produce_json(kafka_broker.bootstrap, topic, arm, settings=PRODUCER_SETTINGS)
    wait_until(lambda: settled([first], topic), 60, "a to arm every alarm")
    time.sleep(1.0)  # a few checkpoints: the timers are stored
    first.signal(signal.SIGTERM)
    assert first.wait_exit(timeout=20) == 0, first.log_tail()

    again = start_instance(config(f"{app}-a"), name="a-again", ready=False)
    second = start_instance(config(f"{app}-b"), name="b", ready=False)
    wait_until(lambda: settled([again, second], topic), 60, "a and b to share the partitions")
    early = list(read_topic(kafka_broker.bootstrap, f"{app}.rang"))
    assert not early, f"{len(early)} alarms rang before both instances ran: the delay is short"
    rang: dict[str, int] = {}

    def every_alarm_rang() -> bool:
        rang.clear()
        for message in read_topic(kafka_broker.bootstrap, f"{app}.rang"):
            alarm = json_value(message)["alarm"]
            rang[alarm] = rang.get(alarm, 0) + 1
        return set(rang) == set(alarms)

    wait_until(every_alarm_rang, 60, "every alarm to ring", interval=1.0)
    time.sleep(2.0)  # a second ring elsewhere would be published by now
    every_alarm_rang()
    twice = {alarm: n for alarm, n in rang.items() if n != 1}
    assert not twice, f"{len(twice)} of {len(alarms)} alarms rang more than once: {twice}"
    # Each rang on the instance that holds its shard, not on the other one.
    owner = owners([again, second], topic)
    elsewhere = [
        alarm
        for alarm in alarms
        if owner[shard_for(alarm.encode(), PARTITIONS, "murmur2")].lane(f"/alarm/{alarm}", "rang")
        != 1
    ]
    assert not elsewhere, f"{len(elsewhere)} alarms did not ring on their shard's owner"
