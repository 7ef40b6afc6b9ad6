"""A loopback gateway in front of pulsar-lite that does what it does not: TLS and logins.

pulsar-lite 0.2.0 has no TLS listener and ignores the credentials of a ``CONNECT``
(it accepts any token, or none). To test what swimstream sends a secured Pulsar cluster
with the real client, :class:`PulsarGateway` listens on a loopback port and forwards to
pulsar-lite's plaintext port, byte for byte, except for three things a secured broker
does itself:

* with ``tls``, it terminates TLS (Python's ``ssl``), optionally asking for a client
  certificate signed by its CA (mutual TLS, what ``AuthenticationTLS`` presents);
* with ``token``, it answers a ``CONNECT`` whose ``auth_method_name`` is not ``token``
  or whose ``auth_data`` is not that token with Pulsar's
  ``Error{error: AuthenticationError}`` and closes the connection, as an Apache Pulsar
  broker with ``authenticationEnabled`` does;
* with ``accepts_token`` (a judge of tokens, such as an OAuth 2.0 issuer's
  :meth:`~tests.support.oauth2_issuer.OAuth2Issuer.accepts`), it admits a ``token``
  ``CONNECT`` that the judge accepts and refuses the others the same way, as a broker
  that checks a JWT's signature and ``exp`` does; only at ``CONNECT``, so a connection
  outlives its token until :meth:`PulsarGateway.drop_connections` ends it (as a broker
  restart would) and the client connects again;
* with ``basic`` (user names and their passwords), it admits a ``CONNECT`` whose
  ``auth_method_name`` is ``basic`` and whose ``auth_data`` is ``user:password`` of one
  of them, and refuses any other the same way. That is what pulsar-client's
  ``AuthenticationBasic`` sends (seen here: the plain text, not base64 as in HTTP's
  ``Authorization: Basic``), and how Apache Pulsar's ``AuthenticationProviderBasic``
  reads it: split at every colon, exactly two parts, so a colon in the user name or
  the password never logs in. With both ``token`` and ``basic``, either is admitted,
  as a broker with both providers does;
* it rewrites pulsar-lite's lookup answers to name the gateway (``brokerServiceUrl`` and
  ``brokerServiceUrlTls``): pulsar-lite names its own plaintext port, and names no TLS
  URL at all, which a TLS client cannot connect to ("Invalid Url").

Frames are ``[total size][command size][BaseCommand][payload]`` (Pulsar's binary
protocol); only the command is read, through the few protobuf fields above.

It runs on threads with blocking TLS handshakes, not on asyncio: asyncio's TLS drops
the alert a failed handshake sends (``certificate required``, ``unknown ca``), which a
real broker's TLS sends and the client's error depends on. Each connection is one
thread, which moves the bytes both ways (an ``SSLSocket`` must not be read and written
from two threads at once).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from connectors.pulsar_wire import (
    CONNECT,
    ERROR,
    bytes_field,
    fields,
    frame,
    read_exactly,
    varint,
)

_LOOKUP_RESPONSE = 24
_AUTHENTICATION_ERROR = 3  # ServerError.AuthenticationError
_REFUSALS = {
    "token": "Unable to authenticate: invalid token",
    "basic": "Unable to authenticate: Unknown user or invalid password",
}
"""What the broker says, per method (Apache Pulsar's words for each provider)."""


def _command_type(command: bytes) -> int:
    for number, value in fields(command):
        if number == 1 and isinstance(value, int):
            return value
    return 0


def _authentication_error(message: str) -> bytes:
    error = (
        b"\x08"
        + varint(2**64 - 1)  # request_id -1, as the broker sends at CONNECT
        + b"\x10"
        + varint(_AUTHENTICATION_ERROR)
        + bytes_field(3, message.encode())
    )
    return frame(b"\x08" + varint(ERROR) + bytes_field(ERROR, error))


def _read_frame(sock: socket.socket) -> tuple[bytes, bytes]:
    """(command, payload) of the next frame, blocking."""
    total, size = struct.unpack(">II", read_exactly(sock, 8))
    rest = read_exactly(sock, total - 4)
    return rest[:size], rest[size:]


def _split_frames(buffer: bytearray) -> Iterator[tuple[bytes, bytes]]:
    """Take the whole frames off the front of ``buffer``."""
    while len(buffer) >= 8:
        total, size = struct.unpack(">II", buffer[:8])
        if len(buffer) < 4 + total:
            return
        frame = bytes(buffer[8 : 4 + total])
        del buffer[: 4 + total]
        yield frame[:size], frame[size:]


def _close_gently(sock: socket.socket) -> None:
    """End a connection whose TLS handshake failed the way a careful server does: stop
    writing, then read what the client still sends (its first request, sent as soon as
    its side of a TLS 1.3 handshake was done) before closing. Closed with that unread,
    the connection would be reset, and a reset may discard the alert the client has yet
    to read."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_WR)
        sock.settimeout(1)
        while socket.socket.recv(sock, 65536):
            pass


def _send(sock: socket.socket, data: bytes) -> None:
    sock.setblocking(True)
    try:
        sock.sendall(data)
    finally:
        sock.setblocking(False)


@dataclass
class Credentials:
    """What a client's ``CONNECT`` carried."""

    client: str = ""
    method: str = ""
    data: bytes = b""


@dataclass
class PulsarGateway:
    """A TLS and login gateway to the pulsar-lite at ``broker_port``; see the module
    docstring. Use it as a context manager."""

    broker_port: int
    tls: ssl.SSLContext | None = None
    token: str | None = None
    basic: dict[str, str] | None = None
    """User names and their passwords (``AuthenticationBasic``)."""
    accepts_token: Callable[[bytes], bool] | None = None
    """Judges a token instead of comparing it with ``token`` (see the module docstring)."""
    host: str = "localhost"
    connects: list[Credentials] = field(default_factory=list)
    refused: list[Credentials] = field(default_factory=list)
    """The ``CONNECT``s it refused."""
    port: int = 0
    _listener: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _open: set[socket.socket] = field(default_factory=set)
    _open_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def service_url(self) -> str:
        """The URL a client reaches the broker through the gateway at."""
        scheme = "pulsar+ssl" if self.tls is not None else "pulsar"
        return f"{scheme}://{self.host}:{self.port}"

    def client_connects(self) -> list[Credentials]:
        """The ``CONNECT``s of pulsar-client (not swimstream's own checks)."""
        return [seen for seen in self.connects if not seen.client.startswith("swimstream")]

    def __enter__(self) -> PulsarGateway:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._start(self._accept)
        return self

    def drop_connections(self) -> int:
        """End every connection now, as a broker that restarts does; how many ended."""
        with self._open_lock:
            serving = list(self._open)
        dropped = 0
        for client in serving:  # (the TLS socket, where there is one: the raw one is spent)
            try:
                socket.socket.shutdown(client, socket.SHUT_RDWR)
            except OSError:
                continue  # (it ended on its own meanwhile)
            dropped += 1
        return dropped

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        if self._listener is not None:
            self._listener.close()

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._start(self._serve, raw)

    def _serve(self, raw: socket.socket) -> None:
        with contextlib.ExitStack() as closing:
            closing.callback(raw.close)
            raw.settimeout(5)
            client = raw
            if self.tls is not None:
                client = self.tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
                closing.callback(client.close)
                try:
                    client.do_handshake()  # (a failed handshake sends its alert here)
                except (OSError, ssl.SSLError):
                    _close_gently(client)
                    return
            with self._open_lock:
                self._open.add(client)
            closing.callback(self._forget, client)
            try:
                command, payload = _read_frame(client)
            except (OSError, ssl.SSLError, struct.error):
                return
            if _command_type(command) == CONNECT:
                refusal = self._refusal(command)
                if refusal is not None:
                    with contextlib.suppress(OSError):
                        client.sendall(_authentication_error(refusal))
                    return
            broker = socket.create_connection(("127.0.0.1", self.broker_port), timeout=5)
            closing.callback(broker.close)
            broker.sendall(frame(command, payload))
            with contextlib.suppress(OSError, ssl.SSLError):
                self._pump(client, broker)

    def _forget(self, raw: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(raw)

    def _pump(self, client: socket.socket, broker: socket.socket) -> None:
        """Move bytes both ways until either side closes, rewriting lookup answers."""
        client.setblocking(False)
        broker.setblocking(False)
        from_broker = bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ)
            selector.register(broker, selectors.EVENT_READ)
            while not self._stop.is_set():
                if isinstance(client, ssl.SSLSocket) and client.pending():
                    _send(broker, self._drain(client) or b"")  # (read past the last select)
                for key, _ in selector.select(0.2):
                    if key.fileobj is client:
                        data = self._drain(client)
                        if data is None:
                            return
                        _send(broker, data)
                    else:
                        try:
                            data = broker.recv(65536)
                        except BlockingIOError:
                            continue
                        if not data:
                            return
                        from_broker += data
                        for command, payload in _split_frames(from_broker):
                            _send(client, frame(self._rewritten(command), payload))

    @staticmethod
    def _drain(sock: socket.socket) -> bytes | None:
        """What can be read now (TLS may buffer more than one record); None at the end."""
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                return data
            if not chunk:
                return data or None
            data += chunk
            if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                return data

    def _rewritten(self, command: bytes) -> bytes:
        if _command_type(command) != _LOOKUP_RESPONSE:
            return command
        url = self.service_url.encode()
        # A message field given twice is merged, the later scalars winning.
        return command + bytes_field(_LOOKUP_RESPONSE, bytes_field(1, url) + bytes_field(2, url))

    def _refusal(self, connect_command: bytes) -> str | None:
        """What the broker says to refuse this ``CONNECT``; ``None``: it is let in."""
        connect = next(
            (v for n, v in fields(connect_command) if n == CONNECT and isinstance(v, bytes)),
            b"",
        )
        seen = Credentials()
        for number, value in fields(connect):
            if number == 1 and isinstance(value, bytes):
                seen.client = value.decode()
            elif number == 5 and isinstance(value, bytes):
                seen.method = value.decode()
            elif number == 3 and isinstance(value, bytes):
                seen.data = value
        self.connects.append(seen)
        refusal = self._judge(seen)
        if refusal is not None:
            self.refused.append(seen)
        return refusal

    def _judge(self, seen: Credentials) -> str | None:
        if self.token is None and self.basic is None and self.accepts_token is None:
            return None
        if seen.method == "token" and self.accepts_token is not None:
            return None if self.accepts_token(seen.data) else _REFUSALS["token"]
        if seen.method == "token" and self.token is not None:
            return None if seen.data == self.token.encode() else _REFUSALS["token"]
        if seen.method == "basic" and self.basic is not None:
            parts = seen.data.decode(errors="replace").split(":")
            if len(parts) == 2 and self.basic.get(parts[0]) == parts[1]:
                return None
            return _REFUSALS["basic"]
        tokens = self.token is not None or self.accepts_token is not None
        return _REFUSALS["token" if tokens else "basic"]
