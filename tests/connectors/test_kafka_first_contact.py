"""The first contact's verdicts: librdkafka's error events read as causes with the
setting to check, and a TLS client at a port that closes its hello (as a plaintext
Apache Kafka listener does) stopped at once rather than waited for."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import KafkaError

from connectors.embedded import EmbeddedKafka
from connectors.kafka import KafkaBrokerError, KafkaSink
from connectors.kafka.first_contact import ErrorWitness, broker_words
from connectors.listener_probe import Listener, probe_listener

SCRAM = {
    "security.protocol": "sasl_ssl",
    "sasl.mechanism": "SCRAM-SHA-256",
    "sasl.username": "svc-orders",
    "sasl.password": "s3cret-pw",
}


def test_a_refused_login_names_the_settings_and_the_mechanism_never_their_values() -> None:
    witness = ErrorWitness()
    witness.saw(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    witness.saw(
        KafkaError(
            KafkaError._AUTHENTICATION,
            "sasl_ssl://k1:9093/bootstrap: SASL authentication error: Authentication failed "
            "during authentication due to invalid credentials with SASL mechanism "
            "SCRAM-SHA-256 (after 12ms in state AUTH_REQ)",
        )
    )
    refused = witness.refusal(SCRAM, "k1:9093")
    assert refused is not None and not refused.unreachable and refused.code == "_AUTHENTICATION"
    assert str(refused) == (
        "authentication failed at the Kafka broker at k1:9093 (security.protocol SASL_SSL, "
        "sasl.mechanism SCRAM-SHA-256): check sasl.username and sasl.password, and that the "
        "user exists on the broker for SCRAM-SHA-256 (it said: SASL authentication error: "
        "Authentication failed during authentication due to invalid credentials with SASL "
        "mechanism SCRAM-SHA-256)"
    )
    assert "svc-orders" not in str(refused) and "s3cret-pw" not in str(refused)


def test_a_mechanism_the_broker_does_not_enable_is_named() -> None:
    witness = ErrorWitness()
    witness.saw(
        KafkaError(
            KafkaError._AUTHENTICATION,
            "sasl_plaintext://k1:9092/bootstrap: SASL PLAIN mechanism handshake failed: "
            "Broker: Unsupported SASL mechanism: broker's supported mechanisms: SCRAM-SHA-512 "
            "(after 0ms in state AUTH_HANDSHAKE)",
        )
    )
    refused = witness.refusal({**SCRAM, "sasl.mechanism": "PLAIN"}, "k1:9092")
    assert refused is not None
    assert str(refused).startswith(
        "the Kafka broker at k1:9092 does not accept sasl.mechanism PLAIN: set sasl.mechanism "
        "to one it enables (it said: SASL PLAIN mechanism handshake failed: Broker: "
        "Unsupported SASL mechanism: broker's supported mechanisms: SCRAM-SHA-512)"
    ), refused


def test_an_untrusted_certificate_points_at_the_ssl_settings() -> None:
    witness = ErrorWitness()
    witness.saw(
        KafkaError(
            KafkaError._SSL,
            "ssl://k1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"
            "certificate verify failed: broker certificate could not be verified",
        )
    )
    refused = witness.refusal({"security.protocol": "SSL"}, "k1:9093")
    assert refused is not None and refused.code == "_SSL"
    assert str(refused).startswith(
        "the TLS handshake with the Kafka broker at k1:9093 failed (security.protocol SSL): "
        "check ssl.ca.location and the other ssl.* settings (it said: SSL handshake failed: "
    ), refused


def test_transport_errors_alone_are_no_refusal() -> None:
    witness = ErrorWitness()
    witness.saw(KafkaError(KafkaError._TRANSPORT, "k1:9092/bootstrap: Connect failed: refused"))
    witness.saw(KafkaError(KafkaError._RESOLVE, "k1:9092/bootstrap: Failed to resolve 'k1'"))
    assert witness.refusal({}, "k1:9092") is None


def test_the_broker_prefix_and_the_timing_are_left_out() -> None:
    said = KafkaError(
        KafkaError._TRANSPORT, "10.0.0.5:9092/1: Disconnected (after 3ms in state UP)"
    )
    assert broker_words(said) == "Disconnected"


@pytest.fixture
def plaintext_kafka_port() -> Iterator[str]:
    """A port that behaves as a plaintext Apache Kafka listener at its first bytes: a
    request of sane size gets an answer carrying its correlation id, and one larger than
    ``socket.request.max.bytes`` (a TLS ClientHello read as a size: 0x16030100) gets the
    connection closed."""
    yield from _kafka_like_port(oldest_metadata=0)


@pytest.fixture
def kafka_4_port() -> Iterator[str]:
    """As :func:`plaintext_kafka_port`, with Apache Kafka 4's versions (KIP-896): its
    ApiVersions answer lists Metadata from version 4, and a request in a version it
    dropped gets the connection closed ("... which is not enabled")."""
    yield from _kafka_like_port(oldest_metadata=4)


def _kafka_like_port(oldest_metadata: int) -> Iterator[str]:
    versions = {18: (0, 4), 3: (oldest_metadata, 12)}  # ApiVersions, Metadata

    def answer(connection: socket.socket) -> None:
        with connection:
            while len(head := connection.recv(4, socket.MSG_WAITALL)) == 4:
                (size,) = struct.unpack(">i", head)
                if not 0 < size < 100 * 1024 * 1024:
                    return
                request = connection.recv(size, socket.MSG_WAITALL)
                api_key, version = struct.unpack(">hh", request[:4])
                low, high = versions.get(api_key, (0, 0))
                if oldest_metadata and not low <= version <= high and api_key != 18:
                    return
                body = request[4:8] + b"\x00\x00"  # correlation id, no error
                if api_key == 18 and oldest_metadata:
                    body += struct.pack(">i", len(versions))
                    body += b"".join(struct.pack(">hhh", k, *v) for k, v in versions.items())
                else:
                    body += b"\x00\x00\x00\x00"
                connection.sendall(struct.pack(">i", len(body)) + body)

    yield from _serving(answer)


async def test_tls_at_a_plaintext_port_that_closes_the_hello_stops_the_open(
    plaintext_kafka_port: str,
) -> None:
    """librdkafka retries it for ever ("connecting to a PLAINTEXT broker listener?"), and
    the open used to wait 10 s and call it unreachable."""
    sink = KafkaSink(plaintext_kafka_port, settings={"security.protocol": "SASL_SSL", **_SASL})
    with pytest.raises(KafkaBrokerError) as raised:
        await sink.open()
    assert not raised.value.unreachable
    assert str(raised.value) == (
        f"the Kafka listener at {plaintext_kafka_port} does not speak TLS, but security.protocol "
        "is SASL_SSL: set security.protocol to SASL_PLAINTEXT, or point broker.bootstrap at "
        "the broker's TLS listener"
    )


_SASL = {"sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": "p"}


async def test_sasl_without_a_mechanism_says_librdkafka_picked_kerberos() -> None:
    """librdkafka says "recompile librdkafka with libsasl2", about a setting not written."""
    sink = KafkaSink("127.0.0.1:9", settings={"security.protocol": "SASL_SSL", **_SASL_USER})
    with pytest.raises(KafkaBrokerError) as raised:
        await sink.open()
    assert str(raised.value).endswith(
        "; sasl.mechanism is not set, so librdkafka uses GSSAPI (Kerberos), which it was built "
        "without: set sasl.mechanism to PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, as "
        "the broker's listener expects"
    ), raised.value


_SASL_USER = {"sasl.username": "u", "sasl.password": "p"}


def test_the_probe_knows_an_apache_kafka_4_listener(kafka_4_port: str) -> None:
    """Kafka 4 dropped Metadata versions 0 to 3 and closes the connection at a request
    in one: the probe's Metadata v0 read every Kafka 4 listener as one wanting SASL."""
    assert probe_listener(kafka_4_port, 9092, 3.0) is Listener.KAFKA


async def test_tls_at_a_kafka_4_plaintext_port_stops_the_open(kafka_4_port: str) -> None:
    """It said "it likely requires SASL authentication", not final, and the start waited
    for ever at a plaintext listener with security.protocol SSL."""
    sink = KafkaSink(kafka_4_port, settings={"security.protocol": "SSL"})
    with pytest.raises(KafkaBrokerError) as raised:
        await sink.open()
    assert not raised.value.unreachable, raised.value
    assert str(raised.value).startswith(
        f"the Kafka listener at {kafka_4_port} does not speak TLS, but security.protocol is SSL"
    )


@pytest.fixture
def java_mutual_tls_port() -> Iterator[str]:
    """A port that answers as an Apache Kafka listener with ``ssl.client.auth=required``
    over TLS 1.2 does a client without a certificate, at its first bytes: Java's TLS
    answers a plaintext request with a fatal ``unexpected_message`` alert (the bytes
    below, measured), and the handshake fails with an alert too."""

    def answer(connection: socket.socket) -> None:
        with connection:
            if connection.recv(4096):
                connection.sendall(b"\x15\x03\x03\x00\x02\x02\x0a")

    yield from _serving(answer)


def test_a_tls_listener_that_alerts_a_plaintext_request_is_a_tls_one(
    java_mutual_tls_port: str,
) -> None:
    """It read as "a server that answers in another protocol, not a Kafka broker", a
    verdict that stops the start: a healthy broker requiring client certificates over
    TLS 1.2, probed once a first contact failed (a broker slow to start, a connection cut
    in the handshake), stopped a start that waiting would have let through."""
    assert probe_listener(java_mutual_tls_port, 9092, 3.0) is Listener.TLS
    assert probe_listener(java_mutual_tls_port, 6650, 3.0, "pulsar") is Listener.TLS


_OIDC = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "OAUTHBEARER",
    "sasl.oauthbearer.method": "oidc",
    "sasl.oauthbearer.client.id": "swimstream",
    "sasl.oauthbearer.client.secret": "s3cret-oidc",
}


async def test_a_token_endpoint_that_does_not_answer_is_waited_for(
    kafka_broker: EmbeddedKafka,
) -> None:
    """librdkafka reports it as an authentication error, which stopped the start as a
    refused login ("check sasl.username and sasl.password", settings OIDC has not) when
    the identity provider was only starting, or not reachable yet."""
    with socket.socket() as nobody:
        nobody.bind(("127.0.0.1", 0))  # bound, never listening: refused
        endpoint = f"http://127.0.0.1:{nobody.getsockname()[1]}/token"
        settings = {**_OIDC, "sasl.oauthbearer.token.endpoint.url": endpoint}
        sink = KafkaSink(kafka_broker.bootstrap, settings=settings)
        with pytest.raises(KafkaBrokerError) as raised:
            await sink.open()
    assert raised.value.unreachable, raised.value
    said = str(raised.value)
    assert said.startswith(f"no SASL OAUTHBEARER token: the token endpoint {endpoint} does not")
    assert "sasl.username" not in said and "s3cret-oidc" not in said, said


def _serving(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """Serve each connection to a loopback port with ``answer`` in a thread of its own,
    yielding the port's address."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    thread.join(5)
