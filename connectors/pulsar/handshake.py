"""Whether a ``pulsar://`` service URL leads to a Pulsar broker, asked before the client.

The Python client connects lazily: creating it succeeds whatever listens at the service
URL, and so did the sink's open, so a service pointed at a Kafka port or a web server
logged "connected to Pulsar", then failed 30 s later on its first subscription with
"TimeOut ... is it running and reachable?". The sink now opens with a handshake of its
own (Pulsar's ``CONNECT``, see :mod:`connectors.listener_probe`).

:func:`check_speaks_pulsar` raises :class:`~swimstream.errors.BrokerError` when no address
of the URL answered as a Pulsar broker: ``unreachable`` (retried by the start) when one
stayed silent or closed the connection (a broker starting, or hung), final when each
answered in another protocol (HTTP, Kafka) or with a TLS handshake (the URL should say
``pulsar+ssl://``), which waiting does not mend. ``pulsar+ssl://`` and HTTP-lookup URLs
are left to the client.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from connectors.listener_probe import Listener, probe_listener
from swimstream.errors import BrokerError

_PULSAR_PORT = 6650

_FINAL: dict[Listener, str] = {
    Listener.KAFKA: "is a Kafka listener, not a Pulsar broker",
    Listener.KAFKA_WANTS_SASL: "is a Kafka listener, not a Pulsar broker",
    Listener.HTTP: "is an HTTP server, not a Pulsar broker",
    Listener.OTHER: "answers, but not in Pulsar's protocol",
    Listener.TLS: "is a TLS listener: write the service URL as pulsar+ssl://",
}
_PASSING: dict[Listener, str] = {
    Listener.CLOSES: "closes the connection at Pulsar's CONNECT",
    Listener.SILENT: "accepts connections but does not answer Pulsar's CONNECT",
    Listener.UNREACHABLE: "is not reachable",
}


def check_speaks_pulsar(service_url: str, timeout: float) -> None:
    """Return when an address of ``service_url`` answers as a Pulsar broker; see the
    module docstring for what is raised otherwise."""
    parts = urlsplit(service_url)
    if parts.scheme != "pulsar":
        return
    reasons: list[str] = []
    final = True
    for address in (a.strip() for a in parts.netloc.split(",")):
        found = probe_listener(address, _PULSAR_PORT, timeout, expect="pulsar")
        if found is Listener.PULSAR:
            return
        final = final and found in _FINAL
        reasons.append(f"{address} {_FINAL.get(found) or _PASSING[found]}")
    raise BrokerError(
        f"no Pulsar broker answers at {service_url}: {'; '.join(reasons)}; check "
        "broker.service_url (a Pulsar broker's port is often 6650)",
        unreachable=not final,
    )
