"""Authentication and TLS of the Pulsar clients, as plain data the connector hands on.

:class:`PulsarSecurity` says what ``broker.pulsar`` says (see
:mod:`swimstream.config.pulsar_client` for the keys and why they are named so), without
pulsar-client's objects: ``_client`` turns it into ``pulsar.Client``'s keyword arguments
and the first contact (:mod:`connectors.pulsar.first_contact`) into the credentials of
its own ``CONNECT``. It is frozen and hashable, because the process's shared clients
are keyed by it: two sources with different credentials must not share a connection.

Secrets stay out of every ``repr`` and message: :meth:`PulsarSecurity.hide` replaces
them in text that came from elsewhere (a broker's answer), and :meth:`missing_files`
names the keys of files that are not there, never their contents.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Literal

from swimstream.config.secrets import HIDDEN

Method = Literal["token", "token_file", "tls", "oauth2", "basic"]

_KEY = "broker.pulsar"
"""Where the settings come from in an app config, for the messages that name them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PulsarSecurity:
    """How a Pulsar client authenticates and whom it trusts; the default: neither."""

    token: str | None = field(default=None, repr=False)
    """A token (``AuthenticationToken``)."""
    token_file: str | None = None
    """A file holding the token, read by the client when it connects."""
    certificate_path: str | None = None
    """The client certificate of mutual TLS (``AuthenticationTLS``), with the next."""
    private_key_path: str | None = None
    oauth2_params: str | None = field(default=None, repr=False)
    """``AuthenticationOauth2``'s JSON (``issuer_url``, ``private_key``, ...)."""
    basic_username: str | None = field(default=None, repr=False)
    """A user name and password (``AuthenticationBasic``), with the next."""
    basic_password: str | None = field(default=None, repr=False)
    trust_certs_file: str | None = None
    """The CA certificates that signed the broker's; ``None``: the system's."""
    allow_insecure_connection: bool = False
    validate_hostname: bool = True

    @property
    def method(self) -> Method | None:
        """Which authentication is configured, if any."""
        if self.token is not None:
            return "token"
        if self.token_file is not None:
            return "token_file"
        if self.certificate_path is not None:
            return "tls"
        if self.oauth2_params is not None:
            return "oauth2"
        if self.basic_username is not None:
            return "basic"
        return None

    @property
    def credential_key(self) -> str:
        """The key to check when the broker refuses the credentials."""
        keys = {
            "token": "authentication.token",
            "token_file": "authentication.token_file (the token it holds)",
            "tls": "authentication.tls (the client certificate and its key)",
            "oauth2": "authentication.oauth2 (the broker refused the token its issuer gave)",
            "basic": "authentication.basic.username and .password",
        }
        method = self.method
        return f"{_KEY}.{keys[method]}" if method else f"{_KEY}.authentication (none is set)"

    def connect_credentials(self) -> tuple[str, bytes] | None:
        """``(auth_method_name, auth_data)`` of a ``CONNECT`` as the client sends it, for
        the methods whose data is known before connecting (``None`` for OAuth 2.0,
        whose token comes from the issuer first: :mod:`connectors.pulsar.oauth2`, and
        without authentication). Basic sends ``user:password`` as it is, not base64."""
        method = self.method
        if method == "token" and self.token is not None:
            return "token", self.token.encode()
        if method == "token_file" and self.token_file is not None:
            with open(self.token_file, "rb") as file:
                return "token", file.read().strip()
        if method == "basic":
            return "basic", f"{self.basic_username}:{self.basic_password}".encode()
        if method == "tls":
            return "tls", b""
        return None

    def missing_files(self) -> list[tuple[str, str]]:
        """``(key, problem)`` for each file named here that cannot be read (checked at
        run, where the files must be; ``check`` may run elsewhere)."""
        named = [
            ("tls_trust_certs_file_path", self.trust_certs_file),
            ("authentication.token_file", self.token_file),
            ("authentication.tls.certificate_path", self.certificate_path),
            ("authentication.tls.private_key_path", self.private_key_path),
        ]
        problems = []
        for key, path in named:
            if path is None:
                continue
            if not os.path.isfile(path):
                problems.append((f"{_KEY}.{key}", f"no file {path!r} here"))
            elif not os.access(path, os.R_OK):
                problems.append((f"{_KEY}.{key}", f"{path!r} cannot be read by this process"))
        return problems

    def hide(self, text: str) -> str:
        """``text`` with every secret held here replaced by ``[hidden]``."""
        for secret in (self.token, self.basic_password, self.oauth2_params):
            if secret:
                text = text.replace(secret, HIDDEN)
        return text


def oauth2_params(
    issuer_url: str, private_key: str, audience: str | None = None, scope: str | None = None
) -> str:
    """The JSON ``AuthenticationOauth2`` takes (for :attr:`PulsarSecurity.oauth2_params`)."""
    params = {"issuer_url": issuer_url, "private_key": private_key}
    params.update({k: v for k, v in (("audience", audience), ("scope", scope)) if v})
    return json.dumps(params)


NO_SECURITY = PulsarSecurity()
"""A plaintext client without authentication (the embedded broker's)."""
