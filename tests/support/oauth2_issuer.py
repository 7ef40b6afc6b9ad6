"""A loopback OAuth 2.0 issuer: what pulsar-client's ``AuthenticationOauth2`` asks for.

pulsar-client 3.13 (its C++ client 4.2.0), given ``{"issuer_url": U, "private_key":
<credentials file>, "audience": A, "scope": S}``, was seen to make two HTTP requests
before its first ``CONNECT``, then again at each connection once the token expires:

1. ``GET U/.well-known/openid-configuration`` (``Accept: application/json``), reading
   ``token_endpoint`` from the JSON answer (OpenID Connect Discovery);
2. ``POST <token_endpoint>``, ``Content-Type: application/x-www-form-urlencoded``, the
   body ``audience=A&client_id=..&client_secret=..&grant_type=client_credentials`` and
   ``&scope=S`` when set: RFC 6749's client credentials grant, the secret in the body
   (``client_secret_post``).

It sends the answer's ``access_token`` in ``CONNECT`` as a token
(``auth_method_name`` ``token``), so a broker checks it as any token. An issuer refuses
a wrong secret with RFC 6749's error answer (401, ``{"error": "invalid_client"}``);
pulsar-client then fails at once with ``AuthenticationError``, without a ``CONNECT``.

:class:`OAuth2Issuer` answers both requests on a free loopback port (plain HTTP), issues
one token to one client, and keeps the forms it was sent for the tests to read; with
``tls``, over HTTPS.

pulsar-client keeps the token until ``expires_in`` seconds after it got it (its
``Oauth2CachedToken``), then asks again when it next needs one: a new connection's
``CONNECT``, or a broker's authentication challenge. With ``rotate``, each request gets
a token of its own, valid ``expires_in`` seconds, and :meth:`OAuth2Issuer.accepts`
judges a token as a broker holding the issuer's key does (signed by it, not expired):
give it to :class:`~tests.support.pulsar_gateway.PulsarGateway` as ``accepts_token``.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode


@dataclass
class OAuth2Issuer:
    """An issuer that gives ``access_token`` to ``client_id`` with ``client_secret``
    (for ``audience``, when set). Use it as a context manager."""

    client_id: str
    client_secret: str
    access_token: str
    audience: str | None = None
    tls: ssl.SSLContext | None = None
    """Serve HTTPS with this server context (the URL then names ``localhost``)."""
    token_requests: list[dict[str, str]] = field(default_factory=list)
    """Each token request's form, in order (secrets included: tests only)."""
    discoveries: int = 0
    """How many times the discovery document was asked for."""
    expires_in: object = 3600
    """The token answer's ``expires_in`` as sent (any JSON value; None leaves it out);
    with ``rotate``, a token expires after it (when it is an ``int``)."""
    rotate: bool = False
    """Issue ``<access_token>.<n>`` to the n-th request (from 1), each expiring on its
    own (see :meth:`accepts`); otherwise ``access_token`` to every request."""
    issued: list[tuple[str, float]] = field(default_factory=list)
    """Each token given with ``rotate``, and when it expires (``time.monotonic``)."""
    echo_form: bool = False
    """Quote the form it was sent (URL-encoded, secret included) in the description of
    a refusal, as a careless issuer might."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    """Numbers the rotated tokens (the server answers each request in a thread)."""
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def issuer_url(self) -> str:
        """The URL to configure as ``issuer_url``."""
        assert self._server is not None, "not started"
        if self.tls is not None:
            return f"https://localhost:{self._server.server_port}"
        return f"http://127.0.0.1:{self._server.server_port}"

    def credentials(self, secret: str | None = None) -> str:
        """A credentials file's JSON for this client (``secret``: another one)."""
        chosen = self.client_secret if secret is None else secret
        return json.dumps({"client_id": self.client_id, "client_secret": chosen})

    def __enter__(self) -> OAuth2Issuer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def answer(self, path: str, form: dict[str, str] | None) -> tuple[int, dict[str, object]]:
        """The status and JSON answer to a GET (``form`` None) or POST of ``path``."""
        if form is None:
            if path != "/.well-known/openid-configuration":
                return 404, {"error": "not_found"}
            self.discoveries += 1
            return 200, {"issuer": self.issuer_url, "token_endpoint": self.issuer_url + "/token"}
        if path != "/token":
            return 404, {"error": "not_found"}
        self.token_requests.append(form)
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            said = urlencode(form) if self.echo_form else "Unauthorized"
            return 401, {"error": "invalid_client", "error_description": said}
        if self.audience is not None and form.get("audience") != self.audience:
            return 400, {"error": "invalid_request", "error_description": "unknown audience"}
        token = self.access_token
        if self.rotate:
            lifetime = self.expires_in if type(self.expires_in) is int else 3600
            with self._lock:
                token = f"{self.access_token}.{len(self.issued) + 1}"
                self.issued.append((token, time.monotonic() + lifetime))
        answer: dict[str, object] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return 200, answer

    def accepts(self, token: bytes) -> bool:
        """Whether ``token`` is one this issuer gave (with ``rotate``) and not expired."""
        expiry = dict(self.issued).get(token.decode(errors="replace"))
        return expiry is not None and time.monotonic() < expiry


def _handler(issuer: OAuth2Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._reply(*issuer.answer(self.path, None))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            self._reply(*issuer.answer(self.path, form))

        def _reply(self, status: int, document: dict[str, object]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests read ``token_requests`` instead."""

    return Handler
