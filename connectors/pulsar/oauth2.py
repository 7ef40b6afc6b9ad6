"""The OAuth 2.0 token the first contact asks the issuer for, as pulsar-client would.

pulsar-client's ``AuthenticationOauth2`` (3.13, C++ 4.2.0) gets its token before its
first ``CONNECT``: ``GET <issuer_url>/.well-known/openid-configuration`` for the
``token_endpoint``, then a ``POST`` there of RFC 6749's client credentials grant
(``grant_type=client_credentials``, ``client_id`` and ``client_secret`` from the
credentials file, ``audience``, ``scope`` if set), form-encoded; it sends the answer's
``access_token`` as a token. An issuer that refuses the secret makes the client fail
with ``AuthenticationError`` and nothing else: not which key, nor that the issuer, not
the broker, said no. So :func:`fetch_access_token` makes the same two requests first:
an issuer's refusal (an RFC 6749 error answer, 400 or 401) stops the start naming the
key to check, and the token it gives goes into the first contact's ``CONNECT``, so a
token the broker refuses is named too.

An issuer that does not answer, or fails (5xx), is a
:class:`~swimstream.errors.BrokerError` marked ``unreachable``: the start waits for it,
as for a broker. One without a discovery document (a 4xx, or no ``token_endpoint``)
is final, naming ``issuer_url``: the client cannot get a token either. What it cannot
judge it leaves to the client (:func:`fetch_access_token` returns ``None``): a TLS
failure other than a certificate the CA file does not verify (a host name mismatch,
whose rule for the issuer was not measured), or a token answer that is no OAuth 2.0.

pulsar-client checks the issuer's ``https`` certificates against
``tls_trust_certs_file_path`` (seen: the CA that signed it lets it in, the system's CAs
or another CA do not, the client then saying ``AuthenticationError``), with a
``pulsar://`` service URL as with ``pulsar+ssl://``, so this check does the same for
both requests (an ``http`` issuer may name an ``https`` token endpoint), and names that
key when a certificate cannot be verified.

The token's lifetime is read as the client reads it: ``expires_in`` as a whole number
of seconds within 32 bits (C++ ``get<uint32_t>``). Zero the client refuses outright (its
producers and consumers then fail with a bare ``AuthenticationError``; tested), so the
start stops naming ``issuer_url``. Anything else it cannot read (missing, negative,
``3600.0``) it takes as "never expires" and never asks again, so once the token expires
every reconnection is refused; that is logged as a warning, not refused, because such a
token may outlive the instance.

Secrets: the client secret and the token are never put in a message; an issuer's
``error_description`` is quoted with them hidden.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from connectors.pulsar.security import PulsarSecurity
from swimstream.config.secrets import HIDDEN
from swimstream.errors import BrokerError

_KEY = "broker.pulsar.authentication.oauth2"
_ERROR_KEYS = {
    "invalid_client": "private_key (the credentials file's client_id and client_secret)",
    "unauthorized_client": "private_key (the client_id may not use client credentials)",
    "invalid_grant": "private_key (the credentials file's client_id and client_secret)",
    "invalid_scope": "scope",
}
"""Which key an RFC 6749 error code (section 5.2) points at; others: the whole block."""
_TRUST_KEY = "broker.pulsar.tls_trust_certs_file_path"
_MAX_LIFETIME = 0xFFFF_FFFF
"""The largest ``expires_in`` the client reads (an unsigned 32-bit number)."""

log = logging.getLogger("swimstream.pulsar")
_NAME_MISMATCHES = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def fetch_access_token(security: PulsarSecurity, timeout: float) -> str | None:
    """The token the issuer of ``security.oauth2_params`` gives its client credentials;
    ``None`` when its answer says nothing this check can judge (the client will try).

    Raises:
        BrokerError: the credentials file cannot be read, the issuer has no discovery
            document, refused the credentials, or has a certificate the CA file does
            not verify (final), or it did not answer or failed (``unreachable``).
    """
    params: dict[str, Any] = json.loads(security.oauth2_params or "{}")
    issuer_url = str(params.get("issuer_url", "")).rstrip("/")
    client_id, client_secret = _client_credentials(str(params.get("private_key", "")))
    hide = _Hider(security, client_secret)
    tls = _tls_context(security)  # (for https only: urllib leaves it aside for http)
    discovery_url = issuer_url + "/.well-known/openid-configuration"
    answer = _request(discovery_url, None, timeout, tls)
    if answer is None:
        return None
    status, discovery = answer
    token_endpoint = discovery.get("token_endpoint")
    if status != 200 or not isinstance(token_endpoint, str):
        found = f"HTTP {status}" if status != 200 else "no token_endpoint"
        raise BrokerError(
            f"the OAuth 2.0 issuer at {_shown(issuer_url)} has no discovery document ({found}"
            f" for {_shown(discovery_url)}): check {_KEY}.issuer_url"
        )
    form = {"grant_type": "client_credentials", "client_id": client_id}
    form["client_secret"] = client_secret
    form.update({k: str(params[k]) for k in ("audience", "scope") if params.get(k)})
    answer = _request(token_endpoint, form, timeout, tls)
    if answer is None:
        return None
    status, document = answer
    if status != 200 and "error" in document:
        code = str(document["error"])
        said = document.get("error_description")
        key = f"{_KEY}.{_ERROR_KEYS[code]}" if code in _ERROR_KEYS else _KEY
        words = f" (it said: {hide(str(said))})" if said else ""
        raise BrokerError(
            f"the OAuth 2.0 issuer at {_shown(issuer_url)} refused the client credentials "
            f"({hide(code)}): check {key}{words}"
        )
    token = document.get("access_token")
    if status != 200 or not isinstance(token, str) or not token:
        return None
    _judge_lifetime(document, issuer_url, hide)
    return token


def _judge_lifetime(document: dict[str, Any], issuer_url: str, hide: _Hider) -> None:
    """Stop on a token the client refuses for its ``expires_in``, and warn of one it
    would keep for good (see the module docstring)."""
    lifetime = token_lifetime(document.get("expires_in"))
    said = hide(json.dumps(document.get("expires_in")) if "expires_in" in document else "none")
    if lifetime == 0:
        raise BrokerError(
            f"the OAuth 2.0 issuer at {_shown(issuer_url)} gave a token that expires at once "
            f"(expires_in {said}), which pulsar-client cannot use: check the client's "
            f"token lifetime at the issuer ({_KEY}.issuer_url)"
        )
    if lifetime is None:
        log.warning(
            "the OAuth 2.0 issuer at %s gave a token without a lifetime pulsar-client reads "
            "(expires_in %s; it takes whole seconds): the client keeps such a token for good, "
            "so once it expires every reconnection is refused; have the issuer send expires_in",
            _shown(issuer_url),
            said,
        )


def token_lifetime(value: Any) -> int | None:
    """``expires_in`` in seconds as pulsar-client reads it, or None where it reads none:
    a whole number from 0 to 2**32 - 1, sent as a JSON number or as digits in a string."""
    if type(value) is int:
        return value if 0 <= value <= _MAX_LIFETIME else None
    if type(value) is str and value.isascii() and value.isdigit():
        number = int(value)
        return number if number <= _MAX_LIFETIME else None
    return None


class _Hider:
    """Replaces the secrets in an issuer's words (it may quote what it was sent)."""

    def __init__(self, security: PulsarSecurity, client_secret: str) -> None:
        self._security = security
        self._client_secret = client_secret

    def __call__(self, text: str) -> str:
        text = self._security.hide(text)
        secret = self._client_secret
        if secret:  # (as sent, and as the form encoded it: an issuer may quote either)
            for spelling in (secret, urllib.parse.quote_plus(secret), urllib.parse.quote(secret)):
                text = text.replace(spelling, HIDDEN)
        return text


def _client_credentials(private_key: str) -> tuple[str, str]:
    """``client_id`` and ``client_secret`` of the credentials file ``private_key``
    names: a path, ``file:///path``, or ``data:application/json;base64,...``."""
    where = f"{_KEY}.private_key"
    try:
        if private_key.startswith("data:"):
            header, _, data = private_key.partition(",")
            raw = base64.b64decode(data) if header.endswith(";base64") else data.encode()
        else:
            path = private_key.removeprefix("file://")
            with open(path, "rb") as file:
                raw = file.read()
        document = json.loads(raw)
    except OSError as exc:
        raise BrokerError(f"{where}: cannot read the credentials file ({exc.strerror})") from None
    except ValueError:
        raise BrokerError(f"{where}: the credentials are not JSON") from None
    if not isinstance(document, dict) or not all(
        isinstance(document.get(name), str) for name in ("client_id", "client_secret")
    ):
        raise BrokerError(f"{where}: the credentials need client_id and client_secret (strings)")
    return document["client_id"], document["client_secret"]


def _tls_context(security: PulsarSecurity) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=security.trust_certs_file)
    if security.allow_insecure_connection:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _request(
    url: str, form: dict[str, str] | None, timeout: float, tls: ssl.SSLContext | None
) -> tuple[int, dict[str, Any]] | None:
    """The status and JSON answer (``{}`` if none) to a GET (``form`` None) or a form
    POST of ``url``, below 500; ``None`` for a TLS failure this check does not judge."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout, context=tls) as response:
            return response.status, _document(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise _unreachable(url, f"HTTP {exc.code}") from None
        return exc.code, _document(exc.read())
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError) and reason.verify_code not in (
            _NAME_MISMATCHES
        ):
            raise BrokerError(
                f"the OAuth 2.0 issuer at {_shown(url)} has a certificate the client cannot "
                f"verify ({reason.verify_message}): check {_TRUST_KEY} (pulsar-client "
                "checks the issuer's certificate with it too)"
            ) from None
        if isinstance(reason, ssl.SSLError):
            return None
        raise _unreachable(url, reason) from None
    except OSError as exc:  # (TimeoutError included)
        raise _unreachable(url, exc) from None
    except ValueError:  # (no scheme, a broken host: urllib's words would quote the URL)
        raise BrokerError(
            f"{_KEY}.issuer_url: not an http or https URL the client can ask for a token"
        ) from None


def _shown(url: str) -> str:
    """``url`` without what may carry a secret: a ``user:password@``, the query."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=host, query="", fragment="").geturl()


def _unreachable(url: str, reason: object) -> BrokerError:
    why = getattr(reason, "strerror", None) or reason
    return BrokerError(
        f"the OAuth 2.0 issuer at {_shown(url)} did not give a token ({why}): "
        f"check {_KEY}.issuer_url",
        unreachable=True,
    )


def _document(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
