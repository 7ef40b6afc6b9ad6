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
judge it leaves to the client (:class:`CannotTell`): an ``https`` issuer whose
certificate Python's ``ssl`` does not accept with the client's CA file (curl, under the
client, may judge it otherwise), or a token answer that is no OAuth 2.0.

Secrets: the client secret and the token are never put in a message; an issuer's
``error_description`` is quoted with them hidden.
"""

from __future__ import annotations

import base64
import json
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


class CannotTell(Exception):
    """The issuer's answer says nothing this check can judge; the client will try."""


def fetch_access_token(security: PulsarSecurity, timeout: float) -> str:
    """The token the issuer of ``security.oauth2_params`` gives its client credentials.

    Raises:
        BrokerError: the credentials file cannot be read, the issuer has no discovery
            document or refused the credentials (final), or it did not answer or
            failed (``unreachable``).
        CannotTell: see the module docstring.
    """
    params: dict[str, Any] = json.loads(security.oauth2_params or "{}")
    issuer_url = str(params.get("issuer_url", "")).rstrip("/")
    client_id, client_secret = _client_credentials(str(params.get("private_key", "")))
    hide = _Hider(security, client_secret)
    tls = _tls_context(security) if issuer_url.startswith("https:") else None
    discovery_url = issuer_url + "/.well-known/openid-configuration"
    try:
        discovery = _request(discovery_url, None, timeout, tls)
    except _Refused as refused:
        raise BrokerError(
            f"the OAuth 2.0 issuer at {issuer_url} has no discovery document (HTTP "
            f"{refused.status} for {discovery_url}): check {_KEY}.issuer_url"
        ) from None
    token_endpoint = discovery.get("token_endpoint")
    if not isinstance(token_endpoint, str):
        raise BrokerError(
            f"the OAuth 2.0 issuer at {issuer_url} names no token_endpoint in its discovery "
            f"document ({discovery_url}): check {_KEY}.issuer_url"
        )
    form = {"grant_type": "client_credentials", "client_id": client_id}
    form["client_secret"] = client_secret
    form.update({k: str(params[k]) for k in ("audience", "scope") if params.get(k)})
    try:
        answer = _request(token_endpoint, form, timeout, tls)
    except _Refused as refused:
        if "error" not in refused.document:
            raise CannotTell(f"HTTP {refused.status} without an OAuth 2.0 error") from None
        code = str(refused.document["error"])
        said = refused.document.get("error_description")
        key = f"{_KEY}.{_ERROR_KEYS[code]}" if code in _ERROR_KEYS else _KEY
        words = f" (it said: {hide(str(said))})" if said else ""
        raise BrokerError(
            f"the OAuth 2.0 issuer at {issuer_url} refused the client credentials "
            f"({hide(code)}): check {key}{words}"
        ) from None
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise CannotTell("no access_token in the issuer's answer")
    return token


class _Refused(Exception):
    def __init__(self, status: int, document: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.document = document


class _Hider:
    """Replaces the secrets in an issuer's words (it may quote what it was sent)."""

    def __init__(self, security: PulsarSecurity, client_secret: str) -> None:
        self._security = security
        self._client_secret = client_secret

    def __call__(self, text: str) -> str:
        text = self._security.hide(text)
        return text.replace(self._client_secret, HIDDEN) if self._client_secret else text


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
) -> dict[str, Any]:
    """The JSON answer to a GET (``form`` None) or a form POST of ``url``; a 4xx
    answer raises :class:`_Refused`, a 5xx or none an unreachable ``BrokerError``."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=tls) as response:
            return _document(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise _unreachable(url, f"HTTP {exc.code}") from None
        raise _Refused(exc.code, _document(exc.read())) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            raise CannotTell(str(exc.reason)) from None
        raise _unreachable(url, exc.reason) from None
    except (TimeoutError, OSError) as exc:
        raise _unreachable(url, exc) from None


def _unreachable(url: str, reason: object) -> BrokerError:
    shown = urllib.parse.urlsplit(url)._replace(query="", fragment="").geturl()
    why = getattr(reason, "strerror", None) or reason
    return BrokerError(
        f"the OAuth 2.0 issuer at {shown} did not give a token ({why}): check {_KEY}.issuer_url",
        unreachable=True,
    )


def _document(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
