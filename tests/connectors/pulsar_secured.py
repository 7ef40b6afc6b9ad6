"""What the Pulsar security tests share: the secrets no message may show, the gateway
in front of pulsar-lite, and a round trip of records or the refusal ``open`` stops with
(see tests/connectors/test_pulsar_security.py for what must hold)."""

from __future__ import annotations

import ssl
import time
from dataclasses import replace
from typing import Any

import pytest

from connectors.embedded import EmbeddedPulsar
from connectors.pulsar import PULSAR_LITE_SETTINGS, PulsarSettings, PulsarSink, PulsarSource
from connectors.pulsar.security import PulsarSecurity
from swimstream.errors import BrokerError
from tests.support.pulsar_gateway import PulsarGateway

TOKEN = "eyJhbGciOiJIUzI1NiJ9.c3dpbXN0cmVhbQ.Hunter2-s3cret"
"""A token shaped like a JWT: the gateway admits it, and no message may show it."""
PASSWORD = "correct horse battery staple"
"""The basic password of user ``twins`` at the gateway; no message may show it."""


def gateway(
    broker: EmbeddedPulsar, *, tls: ssl.SSLContext | None = None, token: str | None = None
) -> PulsarGateway:
    return PulsarGateway(broker.port, tls=tls, token=token)


def settings(**security: Any) -> PulsarSettings:
    """The embedded broker's settings with ``security`` (:class:`PulsarSecurity`'s fields)."""
    return replace(PULSAR_LITE_SETTINGS, security=PulsarSecurity(**security), operation_timeout=5.0)


async def round_trip(service_url: str, topic: str, with_settings: PulsarSettings) -> list[bytes]:
    """Produce 20 records through a sink, then read them with a source; their values."""
    sink = PulsarSink(service_url, settings=with_settings)
    await sink.open()
    reports: list[BaseException | None] = []
    try:
        for number in range(20):
            sink.produce(topic, b"device-%d" % (number % 4), b"%d" % number, None, reports.append)
        assert await sink.flush(10)
    finally:
        await sink.close()
    assert reports == [None] * 20
    source = PulsarSource(service_url, "twins", [topic], settings=with_settings)
    await source.open()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + 10
        while len(values) < 20 and time.monotonic() < deadline:
            values += [record.value() or b"" for record in source.consume(20)]
            if len(values) < 20:
                await source.wait_for_records(0.2)
    finally:
        await source.close()
    return values


async def refusal(
    service_url: str, with_settings: PulsarSettings, secrets: tuple[str, ...] = ()
) -> str:
    """The message of the final error a sink's ``open`` stops with, in under 3 s."""
    sink = PulsarSink(service_url, settings=with_settings)
    began = time.monotonic()
    with pytest.raises(BrokerError) as caught:
        await sink.open()
    await sink.close()
    assert time.monotonic() - began < 3, "it waited for the client's timeout"
    assert not caught.value.unreachable, f"a refusal the start would wait out: {caught.value}"
    for secret in (TOKEN, PASSWORD, *secrets):
        assert secret not in str(caught.value)
    return str(caught.value)
