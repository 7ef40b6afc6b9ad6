"""The first contact with a secured Pulsar broker, and why it failed, in the user's terms.

pulsar-client says little when TLS or authentication fails, and says it late. Measured
with pulsar-client 3.13 against pulsar-lite behind a TLS and token gateway
(``tests/support/pulsar_gateway.py``):

* a broker certificate the client cannot verify: ``ConnectError`` at once, the same
  code as for a broker that is not running (which the start waits for);
* a refused token: the C++ client takes the broker's ``Error{AuthenticationError}``
  answer to its ``CONNECT`` for a dropped connection (its ``ClientConnection`` closes on
  any command but ``CONNECTED`` before it is ready), retries, and after the operation
  timeout (10 s) says ``TimeOut``, the code of a broker that does not answer;
* a ``pulsar+ssl://`` client at a plaintext port: ``TimeOut`` too.

So the start would wait for ever on a failure that waiting does not mend. Before the
client is made, :func:`check_first_contact` asks the broker itself, as the client
would: the TLS handshake with the same trust settings and client certificate
(Python's ``ssl``, over the same OpenSSL rules: the chain against the CA file or the
system's, the host name when ``tls_validate_hostname``), then a ``CONNECT`` carrying the
same credentials. What it learns becomes a :class:`~swimstream.errors.BrokerError`
naming the key of ``broker.pulsar`` to check, final (the start stops) for a refusal and
``unreachable`` (the start waits) for silence, as the Kafka side does
(:mod:`connectors.kafka.first_contact`).

For OAuth 2.0 it first asks the issuer for a token as the client does
(:mod:`connectors.pulsar.oauth2`): an issuer's refusal stops the start naming the key,
and the token goes into the ``CONNECT``. When that cannot be judged (an ``https``
issuer Python's ``ssl`` does not trust, an answer that is no OAuth 2.0), only the TLS
handshake is checked and the rest is left to the client, as before. No secret is
printed: the messages name keys, and a broker's own words pass through
:meth:`PulsarSecurity.hide`, the credentials sent taken out too.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
from urllib.parse import urlsplit

from connectors.listener_probe import Listener, probe_listener
from connectors.pulsar.handshake import check_speaks_pulsar
from connectors.pulsar.oauth2 import fetch_access_token
from connectors.pulsar.security import PulsarSecurity
from connectors.pulsar_wire import ERROR, connect_frame, read_exactly
from connectors.pulsar_wire import fields as wire_fields
from connectors.reachable import split_address
from swimstream.config.secrets import HIDDEN
from swimstream.errors import BrokerError

_SERVER_ERRORS = {3: "AuthenticationError", 4: "AuthorizationError"}
_PORTS = {"pulsar": 6650, "pulsar+ssl": 6651}
_NAME_MISMATCHES = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_KEY = "broker.pulsar"

Verdict = tuple[str, bool] | None
"""Why an address failed and whether that is final; ``None``: it let the client in."""


def check_first_contact(service_url: str, timeout: float, security: PulsarSecurity) -> None:
    """Return when the broker at ``service_url`` accepts the client's TLS and
    credentials (or when this check cannot tell); see the module docstring."""
    missing = security.missing_files()
    if missing:
        raise BrokerError("; ".join(f"{key}: {problem}" for key, problem in missing))
    parts = urlsplit(service_url)
    default_port = _PORTS.get(parts.scheme)
    if default_port is None:
        return  # (an HTTP lookup URL: the client's to judge)
    tls = _tls_context(security) if parts.scheme == "pulsar+ssl" else None
    try:
        credentials = security.connect_credentials()
    except OSError as exc:
        raise BrokerError(
            f"broker.pulsar.authentication.token_file: cannot read {security.token_file!r} "
            f"({exc.strerror or exc})"
        ) from exc
    if security.method == "oauth2":
        credentials = _oauth2_credentials(security, timeout)
    # What listens at a plaintext URL (a Kafka port, an HTTP server, TLS...) is asked with
    # a CONNECT without credentials: first when the client sends none either, else only
    # once the client's own went unanswered (a secured broker logs each refusal).
    classify = tls is None
    if classify and credentials is None:
        check_speaks_pulsar(service_url, timeout)
    asks = security.method != "oauth2" or credentials is not None
    reasons: list[str] = []
    final = True
    for address in (a.strip() for a in parts.netloc.split(",")):
        verdict = _contact(address, default_port, timeout, tls, credentials, asks, security)
        if verdict is None:
            return
        reason, is_final = verdict
        reasons.append(f"{address} {reason}")
        final = final and is_final
    if classify and credentials is not None and not final:
        check_speaks_pulsar(service_url, timeout)
    raise BrokerError(
        f"the Pulsar broker at {service_url} did not let the client in: {'; '.join(reasons)}",
        unreachable=not final,
    )


def _oauth2_credentials(security: PulsarSecurity, timeout: float) -> tuple[str, bytes] | None:
    """The ``CONNECT`` credentials of the token the issuer gives, as the client sends
    them (``token``); ``None`` when the issuer's answer cannot be judged here."""
    token = fetch_access_token(security, timeout)
    return ("token", token.encode()) if token is not None else None


def _tls_context(security: PulsarSecurity) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=security.trust_certs_file)
    if security.allow_insecure_connection:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = security.validate_hostname
    if security.certificate_path is not None:
        try:
            context.load_cert_chain(security.certificate_path, security.private_key_path)
        except (ssl.SSLError, OSError) as exc:
            raise BrokerError(
                f"cannot use the client certificate of {_KEY}.authentication.tls: "
                f"{getattr(exc, 'reason', None) or exc.strerror or exc}; check "
                "certificate_path and private_key_path (PEM, the key unencrypted)"
            ) from exc
    return context


def _contact(
    address: str,
    default_port: int,
    timeout: float,
    tls: ssl.SSLContext | None,
    credentials: tuple[str, bytes] | None,
    asks: bool,
    security: PulsarSecurity,
) -> Verdict:
    try:
        host, port = split_address(address, default_port)
    except ValueError:
        return "is not an address (host:port)", True
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return f"is not reachable ({exc.strerror or exc})", False
    with raw:
        try:
            sock = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
        except ssl.SSLCertVerificationError as exc:
            return _untrusted(host, exc), True
        except ssl.SSLError as exc:
            return _tls_refused(exc, security) or _not_tls(address, default_port, timeout)
        except (OSError, TimeoutError):
            return _not_tls(address, default_port, timeout)
        if not asks:
            return None
        with contextlib.suppress(OSError):  # (a refusal may be waiting to be read)
            sock.sendall(connect_frame(b"swimstream-first-contact", credentials))
        try:
            answer = _read_frame(sock)
        except ssl.SSLError as exc:  # (TLS 1.3: a refused client certificate comes now)
            return _tls_refused(exc, security) or (
                "closed the connection after the TLS handshake, unanswered (if the broker "
                f"wants a client certificate, see {_KEY}.authentication.tls)",
                False,
            )
        except TimeoutError:
            return "accepts connections but does not answer Pulsar's CONNECT", False
        except OSError:
            return "closes the connection at Pulsar's CONNECT", False
    return _judge(answer, security, credentials)


def _untrusted(host: str, exc: ssl.SSLCertVerificationError) -> str:
    if exc.verify_code in _NAME_MISMATCHES:
        return (
            f"has a certificate that does not name {host}: use a host name it names in "
            f"broker.service_url, or set {_KEY}.tls_validate_hostname: false"
        )
    return (
        f"has a certificate the client cannot verify ({exc.verify_message}): check "
        f"{_KEY}.tls_trust_certs_file_path (the CA certificates that signed the broker's)"
    )


def _tls_refused(exc: ssl.SSLError, security: PulsarSecurity) -> Verdict:
    """A TLS alert by which the broker refused the client's certificate, or its lack."""
    reason = str(exc.reason or "")
    if not any(word in reason for word in ("CERTIFICATE", "UNKNOWN_CA")):
        return None
    if security.certificate_path is None:
        return (
            f"wants a client certificate ({reason}): set {_KEY}.authentication.tls",
            True,
        )
    return f"refused the client certificate ({reason}): check {security.credential_key}", True


def _not_tls(address: str, default_port: int, timeout: float) -> Verdict:
    """Why a TLS handshake went nowhere: a plaintext Pulsar listener is final."""
    found = probe_listener(address, default_port, timeout, expect="pulsar")
    if found is Listener.PULSAR:
        return "is a plaintext Pulsar listener: write the service URL as pulsar://", True
    if found in (Listener.KAFKA, Listener.KAFKA_WANTS_SASL, Listener.HTTP, Listener.OTHER):
        return f"is {found.value}, not a Pulsar TLS listener", True
    return "did not complete a TLS handshake", False


def _judge(
    answer: bytes, security: PulsarSecurity, credentials: tuple[str, bytes] | None
) -> Verdict:
    fields = dict(wire_fields(answer))
    kind = fields.get(1)
    if kind != ERROR:
        return None  # CONNECTED, or an authentication challenge the client answers
    error = fields.get(ERROR)
    details = dict(wire_fields(error)) if isinstance(error, bytes) else {}
    number = details.get(2)
    code = _SERVER_ERRORS.get(number) if isinstance(number, int) else None
    if code is None:
        return None  # (something the client will report itself)
    said = details.get(3)
    words = security.hide(said.decode(errors="replace")) if isinstance(said, bytes) else ""
    sent = credentials[1].decode(errors="replace") if credentials else ""
    words = words.replace(sent, HIDDEN) if sent else words  # (an OAuth 2.0 token)
    method = security.method
    if method is None:
        reason = (
            f"refused the client ({code}): it requires authentication; set {_KEY}.authentication"
        )
    else:
        reason = f"refused the client ({code}, {method}): check {security.credential_key}"
    return (f"{reason} (it said: {words})" if words else reason), True


def _read_frame(sock: socket.socket) -> bytes:
    """The command of the next frame (a broker's answer to ``CONNECT`` has no payload)."""
    total, size = struct.unpack(">II", read_exactly(sock, 8))
    if not 0 < size <= total - 4 < 1 << 20:
        raise ConnectionError("not a Pulsar frame")
    return read_exactly(sock, total - 4)[:size]
