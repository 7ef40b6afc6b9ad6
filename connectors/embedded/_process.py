"""The life of one broker child process, shared by the embedded Kafka and Pulsar.

Why it is built this way:

* Ports are found by binding port 0 on 127.0.0.1 and releasing it just before the broker
  binds it. Another process can take the port in that gap; the broker then logs "address
  in use" and dies (Tansu panics and, measured, still exits 0), so :meth:`start` retries
  on fresh ports, up to three times, when the caller did not ask for a port. Only
  loopback is ever bound: an embedded broker is a development tool, not a server.
* "Ready" means the broker answered a real client round trip (Kafka Metadata, a Pulsar
  producer on a throwaway topic), not that a log line appeared or a socket accepted: a
  log line is a promise, a round trip is proof.
* The broker runs in its own session. Ctrl-C in a terminal signals the whole foreground
  process group, and the broker has to outlive the service's drain on SIGINT, which
  still commits to it. The price is that a parent killed with SIGKILL leaves the broker
  behind, so an ``atexit`` hook stops every broker still running on a normal exit.
* :meth:`stop` sends SIGTERM, then SIGKILL after a grace period, then reaps the child, so
  neither a process nor a zombie is left. A paused broker is continued first: a stopped
  process does not act on SIGTERM until it runs again.
* Broker output goes to a log file in a private work directory, never to a pipe (a pipe
  nobody reads fills up and blocks the broker) nor to our own stderr. The directory is
  removed on a clean stop and kept when the broker failed to start or died, for the
  post-mortem; errors quote the last lines of the log and name the file.

A broker object is driven from one thread; it is not thread-safe.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self, TextIO, TypeVar

from swimstream.errors import BrokerError

HOST = "127.0.0.1"
"""The only interface embedded brokers listen on."""

log = logging.getLogger("swimstream.embedded")

_PORT_ATTEMPTS = 3
_POLL_INTERVAL = 0.02
_TAIL_LINES = 25
_ADDRESS_IN_USE = ("AddrInUse", "Address already in use", "Address in use")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

_FREEZE_TIMEOUT = 5.0
"""Seconds :meth:`EmbeddedBroker.pause` waits for every thread of the broker to stop."""
_FREEZE_POLL = 0.001

_STOPPED_BY_US = (0, -signal.SIGTERM, -signal.SIGKILL)
"""Exit codes :meth:`EmbeddedBroker.stop` brings about itself: a clean exit, or death
by the signals it sends."""

# Brokers started and not yet stopped; the atexit hook stops whatever is left.
_running: set[EmbeddedBroker] = set()
_atexit_registered = False


class _PortTaken(Exception):
    """The broker could not bind a port picked for it; retry on fresh ones."""


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct loopback ports that were free a moment ago.

    The sockets stay bound until all ports are picked, so the ports differ from each
    other; after that another process may take one, which :meth:`EmbeddedBroker.start`
    detects and survives.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            probe = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind((HOST, 0))
            ports.append(int(probe.getsockname()[1]))
        return ports


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.25):
            return True
    except OSError:
        return False


def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of process ``pid`` is stopped, by their states in /proc
    (where there is no /proc, the signal is all there is to go by: True)."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        return True
    for stat in tasks.glob("*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # (a thread that ended meanwhile)
            continue
        if fields and fields[0] not in ("T", "t"):
            return False
    return True


def _stop_all_running() -> None:
    for broker in list(_running):
        broker.stop()


class EmbeddedBroker(abc.ABC):
    """A broker binary run as a child process on loopback ports.

    Use it as a context manager (``with EmbeddedKafka() as broker:``) or call
    :meth:`start` and :meth:`stop`. After :meth:`stop` it may be started again, on
    new ports unless a port was given.

    Args:
        port: the port clients connect to; ``None`` picks a free one.
        work_dir: where the log (and any data) goes; kept after stop. ``None`` uses a
            fresh temporary directory, removed on a clean stop.
        startup_timeout: seconds to wait for the broker to serve clients.
        stop_grace: seconds between SIGTERM and SIGKILL in :meth:`stop`.
    """

    title: ClassVar[str]
    """How progress lines and errors name the broker, e.g. ``embedded Kafka (Tansu)``."""

    _slug: ClassVar[str]
    _port_count: ClassVar[int] = 1
    _killed_when_clients_linger: ClassVar[bool] = False
    """Whether this broker outlives ``stop_grace`` while clients stay connected, so that
    SIGKILL is its ordinary way out (logged as detail, not as news)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        work_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        stop_grace: float = 5.0,
    ) -> None:
        self._requested_port = port
        self._requested_work_dir = None if work_dir is None else Path(work_dir)
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.startup_seconds: float | None = None
        """Seconds the last successful :meth:`start` took, retries included."""
        self.exit_code: int | None = None
        """How the last process reaped here ended (None before the first): at
        :meth:`stop`, 0 when Tansu exited by itself at SIGTERM (pulsar-lite dies of it:
        ``-signal.SIGTERM``), ``-signal.SIGKILL`` when the broker outlived ``stop_grace``
        and was killed, as Tansu is while a client stays connected."""
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._ports: list[int] = []
        self._work_dir: Path | None = None
        self._paused = False

    # -- what a concrete broker supplies --------------------------------------------

    @abc.abstractmethod
    def _binary(self) -> str:
        """Path of the executable; raises :class:`BrokerError` when it is missing."""

    @abc.abstractmethod
    def _command(self, binary: str, ports: Sequence[int], work_dir: Path) -> list[str]:
        """The command line; may write config files into ``work_dir``."""

    @abc.abstractmethod
    def _probe(self, timeout: float) -> bool:
        """One readiness round trip with a real client; True once the broker serves."""

    def _release_clients(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Drop clients held for the broker; called before the process is stopped."""

    # -- state ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port clients connect to."""
        if not self._ports:
            raise BrokerError(f"{self.title} has not been started")
        return self._ports[0]

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (paused included), else ``None``."""
        return None if self._process is None else self._process.pid

    @property
    def is_running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`, unless it died."""
        return self._process is not None and self._process.poll() is None

    @property
    def is_paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused

    @property
    def work_dir(self) -> Path:
        """The directory holding the log and the broker's files."""
        if self._work_dir is None:
            raise BrokerError(f"{self.title} has not been started")
        return self._work_dir

    @property
    def log_path(self) -> Path:
        """The file that receives the broker's stdout and stderr."""
        return self.work_dir / f"{self._slug}.log"

    def log_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last ``lines`` lines of the broker's log, colour codes removed."""
        try:
            with self.log_path.open("rb") as log_file:
                log_file.seek(0, os.SEEK_END)
                log_file.seek(max(0, log_file.tell() - 64 * 1024))
                text = log_file.read().decode("utf-8", errors="replace")
        except (OSError, BrokerError):
            return ""
        return "\n".join(_ANSI_ESCAPE.sub("", text).splitlines()[-lines:])

    def __repr__(self) -> str:
        where = f" {HOST}:{self._ports[0]}" if self._ports else ""
        state = "paused" if self._paused else "running" if self.is_running else "stopped"
        return f"<{type(self).__name__}{where} pid={self.pid} {state}>"

    # -- life cycle -----------------------------------------------------------------

    def start(self, *, on_starting: Callable[[str], None] | None = None) -> Self:
        """Start the broker and return once it serves clients.

        ``on_starting`` is called with ``127.0.0.1:PORT`` just before each launch (more
        than once only when a picked port was taken in the meantime).

        Raises:
            BrokerError: the binary is missing, or the broker did not serve within
                ``startup_timeout``; the message quotes the end of its log.
        """
        if self._process is not None:
            raise BrokerError(f"{self.title} is already started ({self!r})")
        binary = self._binary()
        began = time.monotonic()
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                self._launch(binary, on_starting)
                self._wait_until_serving(began + self.startup_timeout)
            except _PortTaken:
                if attempt == attempts:
                    self._fail("could not bind its port: address in use")
                log.info("%s: a picked port was taken meanwhile; retrying", self.title)
                self._terminate()
                self._remove_work_dir()
                continue
            except BaseException:
                # Timeouts, a crash, Ctrl-C: never leave a half-started broker behind.
                self._terminate()
                raise
            break
        self.startup_seconds = time.monotonic() - began
        log.info(
            "%s ready on %s in %.1f s",
            self.title,
            self.address,
            self.startup_seconds,
            extra={"broker": self.address},
        )
        return self

    def stop(self) -> None:
        """Stop the broker: SIGTERM, SIGKILL after ``stop_grace`` seconds, then reap.

        Idempotent. When the broker had died on its own, its work directory is kept and
        a warning quotes the end of its log.
        """
        process = self._process
        if process is None:
            return
        died_on_its_own = process.poll() is not None
        exit_code = self._terminate()
        if died_on_its_own or exit_code not in _STOPPED_BY_US:
            log.info(
                "%s on %s stopped (exit code %s)",
                self.title,
                self.address,
                exit_code,
                extra={"broker": self.address},
            )
        else:  # the exit our own SIGTERM or SIGKILL explains says nothing worth a reader
            log.info("%s on %s stopped", self.title, self.address, extra={"broker": self.address})
        if died_on_its_own:
            log.warning(
                "%s had died on its own (exit code %s); log kept at %s:\n%s",
                self.title,
                exit_code,
                self.log_path,
                self.log_tail(),
            )
        else:
            self._remove_work_dir()

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): it keeps its sockets but answers nothing, from
        the moment this returns.

        The signal stops the process thread by thread, once one of its threads gets the
        CPU to begin the stop; the others run on until then. Returning at the signal, a
        record produced just after a pause was still acknowledged on a loaded machine,
        so this waits (up to :data:`_FREEZE_TIMEOUT`) until every thread is stopped.
        """
        self.ensure_running()
        assert self._process is not None
        self._signal(signal.SIGSTOP)
        self._paused = True
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        while not _all_threads_stopped(self._process.pid):
            self.ensure_running()  # (a broker that died meanwhile says so)
            if time.monotonic() > deadline:
                raise BrokerError(
                    self._describe_failure(f"not stopped {_FREEZE_TIMEOUT:g} s after SIGSTOP")
                )
            time.sleep(_FREEZE_POLL)
        log.info("%s on %s paused", self.title, self.address)

    def resume(self) -> None:
        """Let a paused broker run again (SIGCONT)."""
        self.ensure_running()
        self._signal(signal.SIGCONT)
        self._paused = False
        log.info("%s on %s resumed", self.title, self.address)

    def ensure_running(self) -> None:
        """Raise :class:`BrokerError` unless the broker is started and alive."""
        if self._process is None:
            raise BrokerError(f"{self.title} is not running")
        exit_code = self._process.poll()
        if exit_code is not None:
            raise BrokerError(self._describe_failure(f"died (exit code {exit_code})"))

    def __enter__(self) -> Self:
        if self._process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------

    def _launch(self, binary: str, on_starting: Callable[[str], None] | None) -> None:
        if self._requested_port is not None:
            self._ports = [self._requested_port, *free_ports(self._port_count - 1)]
        else:
            self._ports = free_ports(self._port_count)
        self._work_dir = self._make_work_dir()
        command = self._command(binary, self._ports, self._work_dir)
        log.info("starting %s on %s", self.title, self.address, extra={"broker": self.address})
        log.debug("%s command line: %s", self.title, " ".join(command))
        if on_starting is not None:
            on_starting(self.address)
        self._log_file = self.log_path.open("wb")  # a fresh log per launch
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=self._work_dir,
                env={**os.environ, "NO_COLOR": "1"},
                start_new_session=True,
            )
        except OSError as exc:
            self._log_file.close()
            self._log_file = None
            raise BrokerError(f"{self.title} could not be launched from {binary}: {exc}") from exc
        _running.add(self)
        global _atexit_registered
        if not _atexit_registered:
            atexit.register(_stop_all_running)
            _atexit_registered = True

    def _wait_until_serving(self, deadline: float) -> None:
        assert self._process is not None
        while True:
            exit_code = self._process.poll()
            if self._address_in_use():
                raise _PortTaken
            if exit_code is not None:
                self._fail(f"exited during start-up (exit code {exit_code})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(f"did not serve clients within {self.startup_timeout:.0f} s")
            # Short probes: a port taken by someone else may accept and never answer.
            if _accepts_connections(self.port) and self._probe(min(remaining, 0.5)):
                return
            time.sleep(_POLL_INTERVAL)

    def _address_in_use(self) -> bool:
        tail = self.log_tail()
        return any(marker in tail for marker in _ADDRESS_IN_USE)

    def _fail(self, what: str) -> None:
        message = self._describe_failure(what)
        self._terminate()
        raise BrokerError(message)

    def _describe_failure(self, what: str) -> str:
        tail = self.log_tail() or "(the log is empty)"
        quoted = "\n".join(f"  | {line}" for line in tail.splitlines())
        return f"{self.title} on {self.address} {what}; log kept at {self.log_path}:\n{quoted}"

    def _signal(self, signum: signal.Signals) -> None:
        assert self._process is not None
        # The broker leads its own process group (start_new_session), so signal the group:
        # nothing it might fork survives it. Only while unreaped, so the id is still ours.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)

    def _terminate(self) -> int | None:
        """Stop and reap the process if there is one; return its exit code."""
        process = self._process
        if process is None:
            return None
        self._release_clients()
        if process.poll() is None:
            self._signal(signal.SIGCONT)
            self._signal(signal.SIGTERM)
            try:
                process.wait(self.stop_grace)
            except subprocess.TimeoutExpired:
                log.log(
                    logging.DEBUG if self._killed_when_clients_linger else logging.INFO,
                    "%s still running %.1f s after SIGTERM; killing it",
                    self.title,
                    self.stop_grace,
                )
                self._signal(signal.SIGKILL)
                process.wait()
        self._process = None
        self._paused = False
        self.exit_code = process.returncode
        _running.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return process.returncode

    def _make_work_dir(self) -> Path:
        if self._requested_work_dir is not None:
            self._requested_work_dir.mkdir(parents=True, exist_ok=True)
            return self._requested_work_dir
        return Path(tempfile.mkdtemp(prefix=f"swimstream-{self._slug}-"))

    def _remove_work_dir(self) -> None:
        if self._work_dir is not None and self._work_dir != self._requested_work_dir:
            shutil.rmtree(self._work_dir, ignore_errors=True)


BrokerT = TypeVar("BrokerT", bound=EmbeddedBroker)


def start_with_progress(broker: BrokerT, stream: TextIO | None = None) -> BrokerT:
    """Start ``broker``, telling a person at a terminal what is happening.

    Writes ``starting embedded Kafka (Tansu) on 127.0.0.1:40123 ... ready in 0.1 s`` to
    ``stream`` (standard error by default): the first half before the wait, so a slow
    start is visibly a start and not a hang. Returns the started broker.
    """
    out = sys.stderr if stream is None else stream
    launches = 0

    def starting(address: str) -> None:
        nonlocal launches
        if launches:
            out.write("port taken\n")
        launches += 1
        out.write(f"starting {broker.title} on {address} ... ")
        out.flush()

    try:
        broker.start(on_starting=starting)
    except BrokerError:
        if launches:
            out.write("failed\n")
            out.flush()
        raise
    out.write(f"ready in {broker.startup_seconds or 0.0:.1f} s\n")
    out.flush()
    return broker
