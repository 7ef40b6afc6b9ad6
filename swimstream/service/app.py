"""The service: an app config brought to life next to its broker.

Start-up, in order (each step fails with an error that says what to fix; a broker that
does not answer is waited for instead, at every step that asks it: see
:mod:`swimstream.service.broker_wait` and :mod:`swimstream.service.step_wait`):

1. import the agent classes and check the lanes the config names;
2. open the broker clients (starting an embedded broker for ``kind: embedded``);
3. make sure the topics exist (creating them when ``broker.create_topics``) and that the
   Kafka source topics are co-partitioned: shard p is partition p of every one of them
   (:mod:`swimstream.service.topics`);
4. build the plane, the publisher, the lane sinks and the record router;
5. start the web server (lanes over HTTP, health, metrics, dashboard);
6. start one source loop per protocol.

Shutdown (SIGTERM, SIGINT or :meth:`Service.stop`) drains within
``processing.drain_timeout``: the sources stop fetching and let their records in
flight finish, commit, and leave the group while the sinks flush and close, all by the
deadline even when the broker does not answer (what a sink fails at its close was in
flight: its record was not committed and is read again after a restart, so the exit
status stays 0); the agents stop; the web server closes; an embedded broker stops last.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from swimstream.config import AppConfig, SinkConfig, resolve_agents, unbuilt_settings
from swimstream.config.broker import RECORD_MARGIN
from swimstream.errors import ConfigError
from swimstream.metrics import MetricsRegistry
from swimstream.runtime import Insight, Plane, tune_gc
from swimstream.runtime.waiting import first_of
from swimstream.service.broker_wait import broker_fields, open_clients
from swimstream.service.durability import Durability
from swimstream.service.embedded_watch import watch_embedded
from swimstream.service.handover import Handover
from swimstream.service.health import ServiceHealth
from swimstream.service.placement import Placement
from swimstream.service.shards import ShardMap
from swimstream.service.step_wait import until_answered
from swimstream.service.stoppable import StoppedStarting
from swimstream.service.topics import ensure_topics, protocol_of, source_topics
from swimstream.service.wiring import ConnectorFactory, ProtocolClients, sink_pressure
from swimstream.store.deferral import DeferringSink
from swimstream.store.durable import DurableAgentStore
from swimstream.store.recovery import RestoreStopped
from swimstream.streams import SinkConnector, SourceConnector, TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.lane_sink import LaneSink
from swimstream.streams.router import RecordRouter, compile_routes
from swimstream.streams.sinks import DeliveryFailures, InsightPublisher, SinkTarget
from swimstream.text import counted
from swimstream.web import WebServer
from swimstream.web.startup import StartingServer

if TYPE_CHECKING:
    from swimstream.agent import Agent

log = logging.getLogger("swimstream.service")

DELIVERY_POLL = 0.002
"""Seconds between polls for delivery reports while records wait for theirs."""

IDLE_DELIVERY_POLL = 0.02
"""The longest pause between polls when no record waits; once it is reached, the loop
sleeps until a sink has a record pending (or :data:`QUIET_DELIVERY_POLL` passed)."""

QUIET_DELIVERY_POLL = 1.0
"""Seconds between polls while no record is pending: they serve only client error
events then, which need no hurry."""

CLOSE_AT_LEAST = 0.5
"""Seconds the sources may take to close even after the drain's deadline: a broker that
answers gets a clean leave (acknowledgements sent, the group left) although the agents
used up the drain; one that does not is left behind after that. (The sinks have flushed
up to the deadline by then: they close in what is left.)"""


def instance_id_for(config: AppConfig) -> str:
    """A stable identity for this instance (static group membership needs one)."""
    return config.mesh.instance_id or f"{config.app}-{socket.gethostname()}"


class Service:
    """One swimstream instance running an app config."""

    def __init__(self, config: AppConfig, connectors: ConnectorFactory) -> None:
        self.config = config
        self.instance_id = instance_id_for(config)
        self.registry = MetricsRegistry()
        self._connectors = connectors
        self._stack = AsyncExitStack()
        self._stop = asyncio.Event()
        self._runners: list[SourceRunner] = []
        self._lane_sinks: list[LaneSink] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.plane: Plane | None = None
        self.web: WebServer | None = None
        self.clients: dict[str, ProtocolClients] = {}
        self.failures = DeliveryFailures(self.registry, on_failure=self.fail)
        self.health = ServiceHealth(self)
        self.started_at = 0.0
        """When the start finished (monotonic clock); 0 until then."""
        self._began = False  # the start got past the config checks and the web port
        self.starting: StartingServer | None = None
        """The start's step, which /readyz names until the start is done."""
        self.delivery_sleeps = 0
        """Times the delivery-report loop went to sleep until a record was pending."""
        self.insight_listeners: list[Callable[[Insight], None]] = []
        """Called with every published insight (after it is handed to its sink)."""
        self.durability: Durability | None = None
        self.handover: Handover | None = None
        self.failure: BaseException | None = None
        """Why the service stopped by itself (None after a requested stop)."""

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bring the instance up (see the module docstring); raises on what to fix."""
        config = self.config
        classes = resolve_agents(config)
        routes = {config.agents[name].route.text: cls for name, cls in classes.items()}
        for key, value, effect in unbuilt_settings(config):
            log.warning(
                "%s: %s has no effect yet (not built): %s", key, value, effect, extra={"key": key}
            )
        tune_gc()
        starting = StartingServer(
            _address(config.web.listen),
            self.registry,
            heartbeat_interval=config.web.heartbeat_interval,
        )
        await starting.start()
        self.starting, self._began = starting, True
        try:
            await self._start_serving(starting, routes)
        finally:
            await starting.stop()  # (already stopped once the full web port took over)

    async def _start_serving(
        self, starting: StartingServer, routes: Mapping[str, type[Agent]]
    ) -> None:
        """Start-up from the broker clients on, the port answering probes meanwhile."""
        config = self.config
        starting.step = "opening the broker clients"
        opened = await open_clients(
            self._connectors, config, self.instance_id, self._stack, self._stop, starting
        )
        if opened is None:
            raise StoppedStarting
        self.clients = opened
        admins, where = {p: c.admin for p, c in self.clients.items()}, broker_fields(config)
        counts = await until_answered(
            "checking the topics",
            lambda: ensure_topics(config, admins),
            self._stop,
            starting,
            where,
        )
        starting.step = "restoring state from the changelog"
        store = await self._open_durability(counts, starting)
        self._stop_if_asked()
        placement = self._placement(counts)
        self.plane = await self._stack.enter_async_context(
            Plane(
                routes,
                store=store,
                on_activate=placement.note_made if placement is not None else None,
                replica_id=self.instance_id,
                mailbox_capacity=config.processing.mailbox_capacity,
                idle_timeout=config.processing.idle_timeout,
                max_active=config.processing.max_active_agents,
                on_crash=self.fail,  # (its agents' turns stopped: so must the sources)
                publisher=InsightPublisher(
                    self._publish_targets(),
                    self.registry,
                    self.failures,
                    self.insight_listeners,
                    self.durability.current_checkpoint if self.durability else None,
                ),
            )
        )
        if self.durability is not None:
            kafka_topics = source_topics(self.config).get("kafka")
            # With a consumer group, an agent's timers and links run where its shard is
            # assigned: the hand-over arms them as each shard comes (see its module).
            self.durability.attach(self.plane, arm_stored=not kafka_topics)
            if kafka_topics:
                self.handover = Handover(self.durability, self.plane, kafka_topics, self.fail)
        self._add_lane_sinks(self.plane)
        home = self.clients[config.broker.protocol]
        # A record the sinks cannot write is refused at the door: its checkpoint would
        # fail at every restart. The margin leaves room for keys, headers and encoding.
        largest = min(c.max_record_bytes for c in self.clients.values()) - RECORD_MARGIN
        dead_letters = DeadLetters(
            home.sink, config.dead_letter, self.registry, largest, self.failures
        )
        router = RecordRouter(
            self.plane, compile_routes(config.sources), dead_letters, self.registry, largest
        )
        await starting.release_port()  # the full web port takes over the same port
        self.web = await self._stack.enter_async_context(
            WebServer(
                self.plane,
                registry=self.registry,
                health=self.health,
                listen=(starting.listen[0], starting.port),
                app_name=config.app,
                max_body_size=config.web.max_body_size,
                command_timeout=config.web.command_timeout,
                heartbeat_interval=config.web.heartbeat_interval,
                stream_interval=config.web.stream_interval,
                max_streams=config.web.max_streams,
                placement=placement,
            )
        )
        await starting.stop()  # (the probes it was answering are answered by now)
        self._register_gauges()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._serve_deliveries(), name="swimstream-deliveries"))
        every = list(self.clients.values())
        self._tasks.append(
            loop.create_task(self._watch(lambda: watch_embedded(every)), name="swimstream-broker")
        )
        coalesced = [s for s in self._lane_sinks if s.coalesce is not None]
        for lane_sink in coalesced:
            self._tasks.append(
                loop.create_task(self._watch(lane_sink.run), name="swimstream-coalesce")
            )
        group_metadata = None
        for protocol, topics in source_topics(self.config).items():
            source = await until_answered(  # (it checks the topics again)
                f"opening the {protocol} source",
                functools.partial(_opened_source, self.clients[protocol], topics),
                self._stop,
                starting,
                where,
            )
            runner = SourceRunner(
                f"{protocol}:{','.join(topics)}",
                source,
                router,
                self.registry,
                max_batch=config.processing.max_poll_records,
                max_inflight=max(4 * config.processing.mailbox_capacity, 10_000),
                commit_interval=config.processing.commit_interval,
                commit_every=config.processing.commit_max_records,
                managed_commits=self.durability is not None,
                sinks=sink_pressure(self.clients, coalesced),
            )
            if protocol == "kafka" and self._exactly_once:
                runner.transactional = True
                group_metadata = getattr(source, "consumer_group_metadata", None)
            if self.handover is not None and protocol == "kafka":
                self.handover.follow(runner)
            self._runners.append(runner)
        if self.durability is not None:
            self.durability.start_checkpoints(
                self.plane,
                self.clients["kafka"].sink,  # type: ignore[arg-type]  # Kafka's sink writes the changelog
                self._runners,
                self._exactly_once,
                group_metadata,
                self.fail,
                coalesced,
                [c.sink for protocol, c in self.clients.items() if protocol != "kafka"],
                lambda: self.failures.count,
                self.handover.settled if self.handover is not None else None,
            )
        for runner in self._runners:
            self._tasks.append(loop.create_task(self._watch(runner.run), name=runner.name))
        self.started_at = time.monotonic()
        log.info(
            "%s running as %s: %s, %s, web on %s",
            config.app,
            self.instance_id,
            counted(len(routes), "agent type"),
            counted(sum(len(t) for t in source_topics(self.config).values()), "source topic"),
            self.web.url,
        )

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT or :meth:`stop`, then drain and close."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._signalled, signum)
        try:
            await self.start()
            await self._stop.wait()
        except StoppedStarting:
            pass  # asked to stop before any record was taken: nothing to drain
        finally:
            # The handlers stay through the drain: without them a second Ctrl-C raised
            # KeyboardInterrupt inside it (no final checkpoint, no flush), and a second
            # SIGTERM killed the process.
            try:
                await self.close()
            finally:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)

    def stop(self) -> None:
        """Ask the service to drain and exit (safe from a signal handler)."""
        if not self._stop.is_set():
            if self.started_at:
                log.info("stopping: draining work in flight")
            else:  # (waiting for the broker, say: no record was taken, nothing to drain)
                log.info("stopping before the start finished")
            self._stop.set()

    def _signalled(self, signum: signal.Signals) -> None:
        if self._stop.is_set():
            log.info(
                "%s again: the drain goes on (processing.drain_timeout: %g s)",
                signum.name,
                self.config.processing.drain_timeout,
            )
        self.stop()

    async def close(self) -> None:
        """Drain the sources, checkpoint, flush the sinks, stop agents, web and brokers."""
        deadline = time.monotonic() + self.config.processing.drain_timeout
        reserve = 3.0 if self.durability is not None else 1.0  # for the final checkpoint
        for lane_sink in self._lane_sinks:
            lane_sink.drain()  # (records in flight wait for their coalesced changes)
        for runner in self._runners:
            await runner.stop_consuming(max(0.1, deadline - time.monotonic() - reserve))
        if self.handover is not None:
            # The revoke as the group is left moves nothing.
            await self.handover.close(max(0.1, deadline - time.monotonic() - reserve))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        left = 0
        if self.plane is not None:
            # Agents stop (on_stop) but are not put away: a durable store's final
            # checkpoint keeps their state, and state in memory ends with the process
            # (dumping each agent into it would cost a second per 100,000 agents).
            remaining = deadline - time.monotonic() - (reserve if self.durability else 0.0)
            await self.plane.close(put_away=False, timeout=max(0.1, remaining))
            left = self.plane.dropped
            if left:
                log.warning(
                    "%s still queued for agents at the drain deadline (%g s, "
                    "processing.drain_timeout) were dropped; their records are consumed "
                    "again after a restart%s",
                    counted(left, "message"),
                    self.config.processing.drain_timeout,
                    ", from the last checkpoint" if self.durability else "",
                )
        if self.durability is not None:
            try:
                # No final cut of work left half done: the last committed one stands.
                await self.durability.finish(
                    final=not left, timeout=max(0.1, deadline - time.monotonic())
                )
            except Exception as exc:
                self.failure = self.failure or exc
                log.error("the final checkpoint failed: %s", exc)
            self.durability.close()
        # The sources leave while the sinks flush and close, each within what is left of
        # the deadline: one after the other, a broker that does not answer held each of
        # them up to the deadline in turn.
        for_sources = max(CLOSE_AT_LEAST, deadline - time.monotonic())
        sources_closed = asyncio.gather(*(runner.close(for_sources) for runner in self._runners))
        for lane_sink in self._lane_sinks:
            lane_sink.flush()
        for clients in self.clients.values():
            if not await clients.sink.flush(max(0.1, deadline - time.monotonic())):
                log.warning(
                    "%s sink: records still unacknowledged at the deadline", clients.protocol
                )
        # What the sinks fail as they close was in flight at the deadline (read again).
        self.failures.give_up()
        for clients in self.clients.values():
            await clients.sink.close(max(0.0, deadline - time.monotonic()))
        self.failures.report_held(everything=True)  # (a burst must not end as one line)
        await sources_closed
        self._runners, self._tasks = [], []
        await self._stack.aclose()
        if self._began:  # (not after a config error: nothing had started to stop)
            log.info("stopped")

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- wiring helpers ------------------------------------------------------------------

    def _stop_if_asked(self) -> None:
        """End the start between two steps when stop was asked for meanwhile."""
        if self._stop.is_set():
            raise StoppedStarting

    @property
    def _exactly_once_configured(self) -> bool:
        return self.config.store.durable and self.config.processing.guarantee == "exactly-once"

    @property
    def _exactly_once(self) -> bool:
        return self.durability is not None and self._exactly_once_configured

    async def _open_durability(
        self, counts: dict[str, int], starting: StartingServer
    ) -> DurableAgentStore | None:
        """Recover durable state (Kafka brokers); None keeps state in memory."""
        config = self.config
        kafka = self.clients.get("kafka")
        if not config.store.durable:
            return None
        if kafka is None or kafka.changelog is None:
            log.warning("state is kept in memory only: durable state needs a Kafka broker")
            return None
        if self._exactly_once_configured and kafka.transactional:
            # Records produced while a checkpoint commits wait for the next transaction.
            kafka.sink = DeferringSink(kafka.sink)  # type: ignore[arg-type]
        topics = source_topics(self.config).get("kafka", [])
        shards = counts[topics[0]] if topics else config.broker.partitions
        # A changelog record over the producer's limit is not stored (the margin: headers).
        shard_map, largest = ShardMap(config, shards), kafka.max_record_bytes - RECORD_MARGIN
        self.durability = Durability(
            config, self.instance_id, kafka.changelog, shards, shard_map, kafka.address, largest
        )
        partitions = [TopicPartition(t, p) for t in topics for p in range(shards)]
        try:
            durability = self.durability
            return await until_answered(
                "restoring state from the changelog",
                lambda: durability.open(partitions, self._stop.is_set),
                self._stop,
                starting,
                broker_fields(config),
            )
        except RestoreStopped as exc:
            log.info("stopped while restoring state (%s); the next start reads the same tail", exc)
            raise StoppedStarting from exc
        except StoppedStarting:  # (given up while it waited for the broker's answer)
            log.info("stopped while restoring state; the next start reads the same tail")
            raise

    def _placement(self, counts: Mapping[str, int]) -> Placement | None:
        """Which agents this instance serves over HTTP, when a consumer group shares
        the shards out (every source a Kafka topic); None: all of them."""
        sources = source_topics(self.config)
        topics = sources.get("kafka")
        if not topics or len(sources) > 1:
            return None
        shards = counts[topics[0]]
        placement = Placement(
            ShardMap(self.config, shards),
            topics,
            lambda: [tp for runner in self._runners for tp in runner.connector.assignment()],
            lambda: self.handover.restoring() if self.handover is not None else (),
            lambda: self.handover.revoking() if self.handover is not None else (),
        )
        self.registry.counted(
            "agents_misplaced",
            "Agents made in memory on this instance while another held their shard.",
            lambda: float(placement.misplaced),
        )
        return placement

    async def _watch(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a long-lived task; if it fails, the service fails and stops loudly.

        Takes the coroutine function, not a coroutine: a stop right after the start
        cancels the task before it runs, and a coroutine made but never awaited would
        print a RuntimeWarning on the way out."""
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.fail(exc)

    def fail(self, error: BaseException) -> None:
        """Stop because something broke that the instance cannot recover from itself."""
        if self.failure is None:
            self.failure = error
            log.critical("stopping after a failure: %s", error, exc_info=error)
        self.stop()

    async def _serve_deliveries(self) -> None:
        """Serve the sinks' delivery reports: each completes an insight's effect (and so
        lets its record's offset be committed). Every 2 ms while records wait for theirs
        (the sinks also serve them while waiting for room); with none waiting the pause
        doubles up to 20 ms, and then the loop sleeps until a sink has a record pending
        (at most :data:`QUIET_DELIVERY_POLL`): an idle instance spent most of its CPU on
        these wake-ups."""
        sinks = [clients.sink for clients in self.clients.values()]
        pause = DELIVERY_POLL
        while True:
            waiting = False
            for sink in sinks:
                sink.poll()
                waiting = waiting or sink.pending > 0
            if waiting:
                pause = DELIVERY_POLL
            elif pause >= IDLE_DELIVERY_POLL:
                self.delivery_sleeps += 1
                await first_of([sink.wait_for_pending() for sink in sinks], QUIET_DELIVERY_POLL)
                continue  # poll at once: 2 ms apart again if a record is pending
            else:
                pause = min(pause * 2, IDLE_DELIVERY_POLL)
            await asyncio.sleep(pause)

    def _sink_for(self, kind: str | None) -> SinkConnector:
        protocol = protocol_of(self.config, kind)
        if protocol not in self.clients:
            raise ConfigError(f"sinks: a {protocol} sink needs a {protocol} broker")
        return self.clients[protocol].sink

    def _target(self, sink: SinkConfig) -> SinkTarget:
        connector = self._sink_for(sink.kind)
        clients = self.clients[protocol_of(self.config, sink.kind)]
        largest = clients.max_record_bytes - RECORD_MARGIN  # (as records from sources)
        return SinkTarget(sink.topic, sink.format, connector, largest)

    def _publish_targets(self) -> dict[str, SinkTarget]:
        return {
            sink.publish_name: self._target(sink)
            for sink in self.config.sinks
            if sink.publish_name is not None
        }

    def _add_lane_sinks(self, plane: Plane) -> None:
        for sink in self.config.sinks:
            if sink.from_ is None:
                continue
            target = self._target(sink)
            observer = LaneSink(
                target,
                sink.record_key or "uri",
                self.registry,
                self.failures,
                sink.coalesce,
                self.durability.current_checkpoint if self.durability else None,
            )
            plane.observe(observer, route=sink.from_.route.text, lane=sink.from_.lane)
            self._lane_sinks.append(observer)

    def _register_gauges(self) -> None:
        def lag() -> dict[tuple[tuple[str, str], ...], float]:
            return {
                (("partition", str(tp.partition)), ("topic", tp.topic)): float(behind)
                for runner in self._runners
                for tp, behind in runner.lag().items()
            }

        def inflight() -> float:
            return float(sum(runner.book.inflight for runner in self._runners))

        plane = self.plane
        assert plane is not None
        self.registry.gauge("consumer_lag", "Records behind the high watermark.", lag)
        self.registry.gauge(
            "records_in_flight", "Records consumed whose offsets cannot commit yet.", inflight
        )
        self.registry.gauge(
            "mailbox_depth", "Messages queued in agent mailboxes.", lambda: float(plane.queued())
        )
        if self.durability is not None:
            self.durability.register_gauges(self.registry)

    @property
    def runners(self) -> list[SourceRunner]:
        """The source loops (one per protocol)."""
        return list(self._runners)


async def _opened_source(clients: ProtocolClients, topics: Sequence[str]) -> SourceConnector:
    """A source of ``topics``, opened: a new one each try (a source opens once; one
    whose open failed closed what it had opened)."""
    source = clients.make_source(topics)
    await source.open()
    return source


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)
