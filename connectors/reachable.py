"""Whether any broker address accepts a TCP connection, answered in milliseconds.

The broker clients retry a refused connection until their own timeout runs out (10 s
for a Kafka metadata request, a Pulsar operation), then say little more than "timed
out". A plain connect is refused at once and names the address: a service started
before its broker says so within a second, and stays stoppable while it waits.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """``(host, port)`` of ``host[:port]`` (IPv6 hosts in brackets); ValueError if bad."""
    address = address.strip()
    if "://" in address:  # a listener name or scheme: SASL_SSL://host:9093
        address = address.split("://", 1)[1]
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.lstrip(":")
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    else:
        host, port = address, ""
    if not host:
        raise ValueError("no host")
    return host, int(port) if port else default_port


def unreachable(addresses: Sequence[str], default_port: int, timeout: float) -> list[str] | None:
    """None when one of ``addresses`` accepts TCP; else why each failed."""
    failures: list[str] = []
    for address in addresses:
        try:
            with socket.create_connection(split_address(address, default_port), timeout=timeout):
                return None
        except (OSError, ValueError) as exc:
            failures.append(f"{address.strip()}: {exc}")
    return failures
