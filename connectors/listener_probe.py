"""What listens at a broker address, asked in the brokers' own first words.

The clients say little when the other end is not what the configuration expects.
Measured against the embedded Tansu, pulsar-lite and plain sockets (librdkafka 2.x,
pulsar-client 3.x): a Kafka producer whose metadata request found nothing in 10 s
reports "Broker transport failure" whatever the reason, and its error events say no
more for

* an HTTP server, or a port that accepts and never reads: a timed-out ApiVersion request
  after 10 s, then ``_ALL_BROKERS_DOWN``;
* a Pulsar port: "connection closed by peer ... in state APIVERSION_QUERY";
* ``security.protocol: SSL`` against a plaintext Tansu: nothing at all (Tansu reads the
  TLS ClientHello as a request some hundred MB long and waits for the rest);
* a plaintext client against a TLS listener: "connection reset by peer", logged at info;
* a plaintext client against a listener that requires SASL: "connection reset" once the
  first request after ApiVersions is refused.

The Pulsar client connects lazily: made against a Kafka port or a web server it
succeeds, and the first subscription fails 30 s later with "TimeOut".

So :func:`probe_listener` asks an address itself, in a few dozen bytes and at most
``timeout`` seconds a step: the expected protocol's first request (Kafka's ApiVersions
v0, which every Kafka broker answers before any authentication, then a Metadata request
in a version its answer lists, which a listener that wants SASL first refuses by
closing, as Apache Kafka 4 does a request in a version it dropped; or Pulsar's ``CONNECT``,
protobuf written by hand: two fields), and when that is not answered in kind, the other
protocol's and a TLS handshake without verification (which succeeds only on a TLS
listener). A TLS record in answer to the request is a TLS listener already: Java's TLS
(every Apache Kafka broker's) answers a plaintext request with an alert, and the
handshake without a client certificate fails where the listener requires one (mutual
TLS over TLS 1.2), which read as "another protocol", a verdict that stopped the start.
The answer's kind is a :class:`Listener`.
"""

from __future__ import annotations

import contextlib
import enum
import socket
import struct
from typing import Literal

from connectors.pulsar_wire import connect_frame
from connectors.reachable import speaks_tls, split_address

_API_VERSIONS = 18
_METADATA = 3
_CLIENT_ID = b"swimstream-probe"


class Listener(enum.Enum):
    """What answered at an address."""

    KAFKA = "a plaintext Kafka listener"
    KAFKA_WANTS_SASL = "a plaintext Kafka listener that requires SASL authentication"
    PULSAR = "a Pulsar broker"
    TLS = "a TLS listener"
    HTTP = "an HTTP server"
    OTHER = "a server that answers in another protocol"
    CLOSES = "a server that closes the connection at the first request"
    SILENT = "a server that accepts connections and does not answer"
    UNREACHABLE = "nothing reachable"


def _kafka_request(api_key: int, correlation_id: int, version: int = 0) -> bytes:
    """ApiVersions v0 (no body), or Metadata in ``version`` (0, 1 or 4): of every topic
    in v0, of none after (an empty list, without creating topics in v4)."""
    body = b""
    if api_key == _METADATA:
        body = struct.pack(">i", 0) + (b"\x00" if version >= 4 else b"")
    header = struct.pack(">hhih", api_key, version, correlation_id, len(_CLIENT_ID))
    message = header + _CLIENT_ID + body
    return struct.pack(">i", len(message)) + message


def _metadata_version(sock: socket.socket, answer: bytes) -> int:
    """The Metadata version to ask in, from the broker's ApiVersions v0 ``answer`` (read
    to its end here): 1 where it is served, else 4 (Apache Kafka 4 serves 4 and later
    only, and closes the connection at a request in a version it dropped: KIP-896),
    else 0 (an answer that does not say)."""
    (size,) = struct.unpack(">i", answer[:4])
    with contextlib.suppress(OSError):
        while len(answer) < size + 4 and (chunk := sock.recv(4096)):
            answer += chunk
    try:
        (count,) = struct.unpack_from(">i", answer, 10)
        for index in range(count):
            api_key, low, high = struct.unpack_from(">hhh", answer, 14 + 6 * index)
            if api_key == _METADATA:
                return next((v for v in (1, 4) if low <= v <= high), 0)
    except struct.error:
        pass
    return 0


def _is_kafka_answer(answer: bytes, correlation_id: int) -> bool:
    if len(answer) < 8:
        return False
    size, correlation = struct.unpack(">ii", answer[:8])
    return bool(correlation == correlation_id and 0 < size < 100 * 1024 * 1024)


def _is_pulsar_answer(answer: bytes) -> bool:
    if len(answer) < 9:
        return False
    total, size = struct.unpack(">II", answer[:8])
    return bool(total == size + 4 and answer[8] == 0x08)  # (a frame holding a BaseCommand)


def _exchange(sock: socket.socket, request: bytes, enough: int) -> bytes:
    """Send ``request``; what came back: ``enough`` bytes, or all there was up to a close
    (or a reset). Raises TimeoutError when nothing came in time."""
    received = b""
    try:
        sock.sendall(request)
        while len(received) < enough:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        if not received:
            raise
    except OSError:  # reset: a TLS listener resets a plaintext request
        pass
    return received


def _ask(host: str, port: int, timeout: float, protocol: Literal["kafka", "pulsar"]) -> Listener:
    """One connection, one question in ``protocol``: PULSAR, KAFKA(_WANTS_SASL), HTTP,
    OTHER, CLOSES, SILENT or UNREACHABLE."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return Listener.UNREACHABLE
    with sock:
        try:
            if protocol == "pulsar":
                answer = _exchange(sock, connect_frame(_CLIENT_ID), 9)
                if _is_pulsar_answer(answer):
                    return Listener.PULSAR
            else:
                answer = _exchange(sock, _kafka_request(_API_VERSIONS, 1), 8)
                if _is_kafka_answer(answer, 1):
                    version = _metadata_version(sock, answer)
                    try:
                        after = _exchange(sock, _kafka_request(_METADATA, 2, version), 8)
                    except TimeoutError:  # (slow, not closed: a listener that answers)
                        return Listener.KAFKA
                    return (
                        Listener.KAFKA if _is_kafka_answer(after, 2) else Listener.KAFKA_WANTS_SASL
                    )
        except TimeoutError:
            return Listener.SILENT
    if answer[:2] in (b"\x15\x03", b"\x16\x03"):  # a TLS record: an alert, as Java's TLS answers
        return Listener.TLS  # (whether a handshake then succeeds tells nothing more)
    if answer.startswith(b"HTTP/"):
        return Listener.HTTP
    return Listener.OTHER if answer else Listener.CLOSES


def probe_listener(
    address: str, default_port: int, timeout: float, expect: Literal["kafka", "pulsar"] = "kafka"
) -> Listener:
    """What listens at ``address`` (``host[:port]``), asked first in the protocol
    ``expect``-ed; see the module docstring."""
    try:
        host, port = split_address(address, default_port)
    except ValueError:
        return Listener.UNREACHABLE
    found = _ask(host, port, timeout, expect)
    if found in (Listener.UNREACHABLE, Listener.HTTP, Listener.TLS):
        return found
    if found.name.startswith(expect.upper()):
        return found
    if speaks_tls(host, port, timeout):
        return Listener.TLS
    if found is Listener.SILENT:
        return found
    other = _ask(host, port, timeout, "kafka" if expect == "pulsar" else "pulsar")
    return other if other in (Listener.PULSAR, Listener.KAFKA, Listener.KAFKA_WANTS_SASL) else found
