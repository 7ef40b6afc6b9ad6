"""Whether a Kafka client can reach the brokers it needs, for readiness.

librdkafka reports a refused or closed connection as an error event (``_TRANSPORT``,
``_ALL_BROKERS_DOWN``), but a broker that hangs, or a network that drops packets,
closes nothing: requests simply go unanswered until ``socket.timeout.ms`` (60 s), and
even then librdkafka only logs. Measured against a frozen (SIGSTOPped) Tansu, no error
event arrived at all in 15 s. So the verdict also reads librdkafka's per-broker
statistics, delivered every ``statistics.interval.ms``:

* a broker *needed* right now is the group coordinator, or one leading a partition this
  client holds (``toppars``); brokers the client merely knows about do not count, so one
  dead broker of a healthy cluster does not fail readiness once its partitions moved;
* a needed broker is unreachable when its connection is not ``UP`` (``INIT`` means
  "not needed yet" and is ignored), or when it owes a response (``waitresp_cnt > 0``)
  and nothing arrived on its socket (``rxidle``) for longer than the stall time, three
  seconds beyond the longest legitimate Fetch wait. The coordinator's silence is not
  judged this way: a broker may hold a JoinGroup for many seconds on purpose;
* a client none of whose broker connections is ``UP`` reaches none. When a broker goes
  away (killed, a refused port), librdkafka forgets the partitions' leader and the
  coordinator: every broker left is ``INIT``, which the rule above ignores as not
  needed. Judged fine then, each second's statistics said "brokers answer again" and the
  next refused connection "lost contact": two lines a second, and ``/readyz`` flickered.

``connected`` turns False on an unreachable error event or a statistics verdict, and True
on the next verdict that finds every needed broker answering. Transitions are logged
once each, naming the broker and how long it has been silent.
"""

from __future__ import annotations

import json
import logging

from confluent_kafka import KafkaError

from connectors.kafka.errors import UNREACHABLE, ErrorLog
from swimstream.logfields import Log
from swimstream.text import counted

_COORDINATOR = "GroupCoordinator"
_IGNORED_STATES = frozenset({"INIT"})


class ConnectionHealth:
    """Folds error events and statistics into one ``connected`` flag.

    Its callbacks run on whichever thread serves the client (the event loop or the
    source's fetch thread); they only assign a bool and log, so no lock is needed.
    """

    def __init__(self, logger: Log, where: str, stall_seconds: float) -> None:
        self.connected = True
        self._logger = logger
        self._where = where
        self._stall_us = int(stall_seconds * 1_000_000)
        self.errors = ErrorLog(logger, where)

    def on_error(self, error: KafkaError) -> None:
        """librdkafka's ``error_cb``: log it (rate-limited); an unreachable broker
        clears ``connected``."""
        try:
            if error.code() in UNREACHABLE:
                self._set(False, error.str())
            level = logging.ERROR if error.fatal() else logging.WARNING
            self.errors.report(error, level)
        except Exception:  # never let a bug here escape into librdkafka's call
            self._logger.exception("%s: handling a client error failed", self._where)

    def on_stats(self, stats_json: str) -> None:
        """librdkafka's ``stats_cb``: judge every needed broker (see the module docstring)."""
        try:
            problem = self.judge(json.loads(stats_json))
        except Exception:
            self._logger.exception("%s: reading client statistics failed", self._where)
            return
        self._set(problem is None, problem)

    def on_activity(self) -> None:
        """Records arrived, so the broker that sent them answers."""
        if not self.connected:
            self._set(True, None)

    def judge(self, stats: dict[str, object]) -> str | None:
        """Why the client cannot reach a broker it needs, or None when it can."""
        brokers = stats.get("brokers")
        if not isinstance(brokers, dict):
            return None
        for name, broker in brokers.items():
            if not isinstance(broker, dict):
                continue
            coordinator = name == _COORDINATOR
            if not (coordinator or broker.get("toppars")):
                continue
            state = str(broker.get("state", ""))
            if state in _IGNORED_STATES:
                continue
            if state != "UP":
                return f"connection to {_display(name, broker)} is {state}"
            waiting = int(broker.get("waitresp_cnt", 0))
            idle_us = int(broker.get("rxidle", -1))
            if not coordinator and waiting > 0 and idle_us > self._stall_us:
                return (
                    f"{_display(name, broker)} has not answered {counted(waiting, 'request')} "
                    f"for {idle_us / 1_000_000:.1f} s"
                )
        states = {
            _display(name, broker): str(broker.get("state", ""))
            for name, broker in brokers.items()
            if isinstance(broker, dict)
        }
        if "UP" not in states.values():
            listed = ", ".join(f"{name} {state}" for name, state in sorted(states.items()))
            return f"no connection to a broker is up ({listed or 'none known'})"
        return None

    def _set(self, connected: bool, reason: str | None) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        if connected:
            self._logger.info("%s: brokers answer again", self._where)
        else:
            self._logger.warning("%s: lost contact with the broker: %s", self._where, reason)


def _display(name: str, broker: dict[str, object]) -> str:
    if name == _COORDINATOR:
        nodename = broker.get("nodename")
        return f"the group coordinator ({nodename})" if nodename else "the group coordinator"
    return f"broker {name}"
