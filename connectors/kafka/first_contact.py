"""The first contact with a Kafka broker, and why it failed, in the user's terms.

librdkafka keeps retrying whatever went wrong, and a metadata request that found no
broker in its timeout fails with "Broker transport failure" whether the broker is down,
refused the login or speaks another protocol: the reason, when there is one, came as an
error event meanwhile. A failed SASL login used to read as an unreachable broker, and
the start waited for it forever. :func:`first_contact` asks for metadata in short steps,
keeps the error events that arrived (:class:`ErrorWitness`), and ends early with
:class:`KafkaBrokerError` naming the cause and the setting to check; when no event says
anything, it asks the bootstrap addresses itself (:mod:`connectors.listener_probe`), at
once when a TLS handshake was cut short (a plaintext Apache Kafka listener closes a
ClientHello; so may a TLS listener going down, which the probe tells apart), else once
the request's time is up.

Which failures stop the start, and which are waited out
    Kafka Streams fails at once on an authentication or TLS error, while librdkafka
    retries it forever; swimstream stops its start (exit 1, the reason on the last line),
    because waiting does not mend a wrong password, a mechanism the broker does not
    enable, a certificate it cannot verify or a TLS client at a plaintext port, and an
    orchestrator's restarts with back-off show the failure where an operator looks. The
    same holds for an address that answers HTTP or another protocol. What waiting can
    mend stays ``unreachable`` and is retried by the start: nothing listening, a host
    name that does not resolve (yet), an OAUTHBEARER token endpoint that does not answer
    (librdkafka calls it an authentication error, though no broker was asked), a port
    that accepts and stays silent or closes the connection (a broker starting or hung),
    and a listener that closes the connection at the first request after the handshake
    (it likely wants SASL: a guess, so not final).
    Once running, the clients' own retries go on as before, logged at most once per kind
    every 30 s (:class:`~connectors.kafka.errors.ErrorLog`).

No secret is printed: the messages name the settings (``sasl.username``,
``sasl.password``) and the mechanism, never their values, and the broker's own words,
which librdkafka does not fill with credentials.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException

from connectors.kafka.errors import KafkaBrokerError, kafka_error_of
from connectors.listener_probe import Listener, probe_listener

STEP = 1.0
"""Seconds one metadata request of the first contact may take before the events are read."""
PROBE_TIMEOUT = 3.0
"""Seconds each step of a listener probe may take."""
_FAST_FAILURE_PAUSE = 0.2
"""A request that failed at once (every broker down) is repeated this much later."""

_BROKER_PREFIX = re.compile(r"^\S+://\S+?/\S+?: |^\S+:\d+/\S+?: ")
_AFTER_SUFFIX = re.compile(r"\s*\(after \d+ms in state \w+\)\s*$")


class _MetadataClient(Protocol):
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> object: ...
    def poll(self, timeout: float = -1) -> int: ...


class ErrorWitness:
    """The error events of a client's first contact (librdkafka's ``error_cb`` calls
    :meth:`saw` from whichever thread serves it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[int, KafkaError] = {}
        self._handshake: KafkaError | None = None

    def saw(self, error: KafkaError) -> None:
        """Remember the latest event of each kind (and a TLS handshake cut short)."""
        with self._lock:
            self._seen[error.code()] = error
            if error.code() == KafkaError._TRANSPORT and "state SSL_HANDSHAKE" in error.str():
                self._handshake = error

    @property
    def handshake_cut_short(self) -> bool:
        """The peer closed the connection in the TLS handshake, as a plaintext Apache
        Kafka listener does with a ClientHello (and as a TLS listener going down may:
        so it is a question for the probe, not yet a verdict)."""
        with self._lock:
            return self._handshake is not None

    def refusal(self, settings: Mapping[str, object], bootstrap: str) -> KafkaBrokerError | None:
        """The error for a failure waiting does not mend, if one was seen (or, not final,
        for a token endpoint that does not answer: :func:`_token_failure`)."""
        with self._lock:
            authentication = self._seen.get(KafkaError._AUTHENTICATION)
            tls = self._seen.get(KafkaError._SSL)
        protocol = str(settings.get("security.protocol", "plaintext")).upper()
        mechanism = str(settings.get("sasl.mechanism", settings.get("sasl.mechanisms", "GSSAPI")))
        if authentication is not None:
            said = broker_words(authentication)
            if said.startswith(_NO_TOKEN):
                return _token_failure(said, settings)
            if "mechanism" in said and ("handshake failed" in said or "Unsupported" in said):
                message = (
                    f"the Kafka broker at {bootstrap} does not accept sasl.mechanism "
                    f"{mechanism}: set sasl.mechanism to one it enables (it said: {said})"
                )
            else:
                message = (
                    f"authentication failed at the Kafka broker at {bootstrap} "
                    f"(security.protocol {protocol}, sasl.mechanism {mechanism}): check "
                    f"sasl.username and sasl.password, and that the user exists on the "
                    f"broker for {mechanism} (it said: {said})"
                )
            return KafkaBrokerError(message, code="_AUTHENTICATION")
        if tls is not None:
            return KafkaBrokerError(
                f"the TLS handshake with the Kafka broker at {bootstrap} failed (security."
                f"protocol {protocol}): check ssl.ca.location and the other ssl.* settings "
                f"(it said: {broker_words(tls)})",
                code="_SSL",
            )
        return None


_NO_TOKEN = "Failed to acquire SASL OAUTHBEARER token"
"""How librdkafka's authentication error begins when no token came from the identity
provider (``sasl.oauthbearer.method: oidc``): the broker was not asked anything."""
_UNANSWERED = ("connect to", "resolve", "Timeout", "timed out")
"""Words of curl's errors for a token endpoint that did not answer."""


def _token_failure(said: str, settings: Mapping[str, object]) -> KafkaBrokerError:
    """No token for OAUTHBEARER: waited for when its endpoint did not answer (an identity
    provider starting beside the service, or not reachable yet), final when it refused."""
    endpoint = settings.get("sasl.oauthbearer.token.endpoint.url", "(not set)")
    if any(words in said for words in _UNANSWERED):
        return KafkaBrokerError(
            f"no SASL OAUTHBEARER token: the token endpoint {endpoint} does not answer "
            f"(sasl.oauthbearer.token.endpoint.url; it said: {said})",
            code="_AUTHENTICATION",
            unreachable=True,
        )
    return KafkaBrokerError(
        f"no SASL OAUTHBEARER token from the token endpoint {endpoint}: check "
        f"sasl.oauthbearer.client.id, sasl.oauthbearer.client.secret and the other "
        f"sasl.oauthbearer.* settings (it said: {said})",
        code="_AUTHENTICATION",
    )


def creation_hint(exc: KafkaException, settings: Mapping[str, object]) -> str:
    """What to do about a client librdkafka would not create, when its words do not say
    it: ``""`` or ``"; <hint>"``. A SASL ``security.protocol`` without ``sasl.mechanism``
    gets Kerberos, which librdkafka answers with "recompile librdkafka with libsasl2"."""
    error = kafka_error_of(exc)
    text = error.str() if error is not None else str(exc)
    mechanism_set = "sasl.mechanism" in settings or "sasl.mechanisms" in settings
    if "No provider for SASL mechanism GSSAPI" in text and not mechanism_set:
        return (
            "; sasl.mechanism is not set, so librdkafka uses GSSAPI (Kerberos), which it was "
            "built without: set sasl.mechanism to PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or "
            "OAUTHBEARER, as the broker's listener expects"
        )
    return ""


def broker_words(error: KafkaError) -> str:
    """An error event's text without librdkafka's broker prefix and timing suffix."""
    return _AFTER_SUFFIX.sub("", _BROKER_PREFIX.sub("", error.str().strip()))


def _plaintext_port(address: str, protocol: str) -> str:
    plain = "SASL_PLAINTEXT" if protocol.startswith("SASL") else "PLAINTEXT"
    return (
        f"the Kafka listener at {address} does not speak TLS, but security.protocol is "
        f"{protocol}: set security.protocol to {plain}, or point broker.bootstrap at the "
        "broker's TLS listener"
    )


def first_contact(
    client: _MetadataClient,
    witness: ErrorWitness,
    settings: Mapping[str, object],
    bootstrap: str,
    default_port: int,
    timeout: float,
) -> None:
    """Ask for metadata until it comes (return) or ``timeout`` seconds passed (raise).

    Raises:
        KafkaBrokerError: not ``unreachable`` for a failure waiting does not mend (see
            the module docstring), else ``unreachable`` naming the likely causes.
    """
    deadline = time.monotonic() + timeout
    while True:
        began = time.monotonic()
        try:
            client.list_topics(None, max(0.1, min(STEP, deadline - began)))
            return
        except KafkaException as exc:
            failure = exc
        client.poll(0)  # serves the error events to the witness
        refused = witness.refusal(settings, bootstrap)
        if refused is not None:
            raise refused from failure
        now = time.monotonic()
        if now >= deadline or witness.handshake_cut_short:
            break
        if now - began < _FAST_FAILURE_PAUSE:
            time.sleep(min(_FAST_FAILURE_PAUSE, deadline - now))
    raise _diagnosed(failure, settings, bootstrap, default_port) from failure


def _diagnosed(
    failure: KafkaException, settings: Mapping[str, object], bootstrap: str, default_port: int
) -> KafkaBrokerError:
    protocol = str(settings.get("security.protocol", "plaintext")).upper()
    tls = protocol in ("SSL", "SASL_SSL")
    error = kafka_error_of(failure)
    said = f"{error.str()} ({error.name()})" if error is not None else str(failure)
    verdicts: list[tuple[str, bool]] = []  # (why, final)
    for address in (a.strip() for a in bootstrap.split(",") if a.strip()):
        found = probe_listener(address, default_port, PROBE_TIMEOUT)
        verdicts.append(_verdict(address, found, protocol, tls))
    final = bool(verdicts) and all(is_final for _, is_final in verdicts)
    reasons = "; ".join(why for why, _ in verdicts) or "no address to ask"
    if not final:  # (librdkafka's words add nothing to a verdict)
        reasons = f"{reasons} (asking the Kafka broker at {bootstrap} for metadata: {said})"
    return KafkaBrokerError(
        reasons,
        code=error.name() if error is not None else "",
        unreachable=not final,
    )


def _verdict(address: str, found: Listener, protocol: str, tls: bool) -> tuple[str, bool]:
    """Why ``address`` gave no metadata, and whether that is final."""
    if found is Listener.KAFKA and tls:
        return _plaintext_port(address, protocol), True
    if found is Listener.TLS and tls:
        return (
            f"{address} is a TLS listener, but the client's handshake or requests failed "
            "there: is the broker going down or overloaded?",
            False,
        )
    if found is Listener.TLS and not tls:
        secure = "SASL_SSL" if protocol.startswith("SASL") else "SSL"
        return (
            f"{address} is a TLS listener, but security.protocol is {protocol}: set "
            f"security.protocol to {secure} (with ssl.ca.location when its certificate "
            "is not signed by a public authority)",
            True,
        )
    if found is Listener.PULSAR:
        return (
            f"{address} is a Pulsar broker, not a Kafka broker: check the port in "
            "broker.bootstrap, or use broker.kind: pulsar with broker.service_url",
            True,
        )
    if found in (Listener.HTTP, Listener.OTHER):
        return (
            f"{address} is {found.value}, not a Kafka broker: check the port in "
            "broker.bootstrap (a Kafka listener's is often 9092)",
            True,
        )
    if found is Listener.KAFKA_WANTS_SASL and not protocol.startswith("SASL"):
        return (
            f"{address} answered Kafka's handshake and closed the connection at the "
            "first request: it likely requires SASL authentication (security.protocol "
            "SASL_PLAINTEXT or SASL_SSL, with sasl.mechanism, sasl.username and "
            "sasl.password)",
            False,
        )
    if found in (Listener.KAFKA, Listener.KAFKA_WANTS_SASL):
        return (
            f"{address} answers as a Kafka broker, but the client's requests failed: "
            "the addresses the broker advertises (advertised.listeners) must be "
            "reachable from here too",
            False,
        )
    if found is Listener.CLOSES:
        return (
            f"{address} closes the connection at Kafka's first request: is it a Kafka "
            f"listener, for security.protocol {protocol}?",
            False,
        )
    if found is Listener.SILENT:
        return (
            f"{address} accepts connections but does not answer Kafka's first request: "
            "a broker that hangs, or the port of another service",
            False,
        )
    return f"{address} is not reachable: is the broker running?", False
