"""Whether any broker address accepts a TCP connection, answered in milliseconds.

The broker clients retry a refused connection until their own timeout runs out (10 s
for a Kafka metadata request, a Pulsar operation), then say little more than "timed
out". A plain connect is refused at once and names the address: a service started
before its broker says so within a second, and stays stoppable while it waits. A host
name that does not resolve is said in those words (a DNS failure read as "Name or
service not known" beside a port number, which sent people looking for a service).
"""

from __future__ import annotations

import socket
import ssl
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
            host, port = split_address(address, default_port)
        except ValueError as exc:
            failures.append(f"{address.strip()}: {exc}")
            continue
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return None
        except socket.gaierror as exc:  # (retried all the same: a name may appear later)
            failures.append(
                f"{address.strip()}: the host name {host} does not resolve ({exc.strerror})"
            )
        except OSError as exc:
            failures.append(f"{address.strip()}: {exc}")
    return failures


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` completes a TLS handshake (unverified: a question of
    protocol, not of trust; nothing is sent over it)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False
