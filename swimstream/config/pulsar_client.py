"""``broker.pulsar``: how the Pulsar clients prove who they are and whom they trust.

A Pulsar cluster secured the usual way takes a ``pulsar+ssl://`` service URL, trusts a
CA of its own and wants one of the client's authentication plugins. pulsar-client
configures them with keyword arguments of ``pulsar.Client`` (``tls_trust_certs_file_path``,
``tls_allow_insecure_connection``, ``tls_validate_hostname``) and an ``authentication``
object (``AuthenticationToken``, ``AuthenticationTLS``, ``AuthenticationOauth2``,
``AuthenticationBasic``). The keys here carry the client's own names, so a Pulsar user
reads them without a table, with one mapping per plugin under ``authentication`` of
which exactly one is set: two would leave it to the client which one wins.

Secrets (``token``, ``basic.password``, ``oauth2.private_key``, which may hold the
credentials themselves as a ``data:`` URL) are never printed back:
:mod:`swimstream.config.secrets` lists their paths, and these models and the
connector's objects leave them out of their ``repr``. Files are named, not read: like
librdkafka's ``*.location`` settings they may exist only where the service runs, so
``check`` leaves them to ``run``, which reports a missing one before it tries the broker.

One choice differs from pulsar-client's defaults: ``tls_validate_hostname`` is on, as
librdkafka's ``ssl.endpoint.identification.algorithm`` is. A certificate that does not
name the host is what hostname validation exists to refuse; the start names the key
when it does.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from swimstream.config.values import Boolean, FrozenModel, TypeDoc
from swimstream.errors import ConfigError


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


Text = Annotated[str, AfterValidator(_not_blank)]
"""A string that says something (an empty ``${VAR}`` leaves nothing)."""


def _no_colon(value: str) -> str:
    if ":" in value:
        # Apache Pulsar's basic provider splits ``user:password`` at every colon and
        # refuses anything but two parts, and its password file is split the same way:
        # such credentials could never log in. The value itself is not shown.
        raise ValueError(
            "must not contain ':' (Apache Pulsar splits user:password at every colon, "
            "so these credentials could never log in)"
        )
    return value


BasicText = Annotated[str, AfterValidator(_not_blank), AfterValidator(_no_colon)]
"""Half of basic credentials: no colon (see :func:`_no_colon`)."""
FilePath = Annotated[str, AfterValidator(_not_blank), TypeDoc("file path")]
"""A path the service opens when it runs (not checked by ``check``: see the docstring)."""


class PulsarTlsAuthentication(FrozenModel):
    """Mutual TLS (pulsar-client's `AuthenticationTLS`): the client presents a
    certificate its broker's CA signed; needs a `pulsar+ssl://` service URL."""

    certificate_path: FilePath = Field(description="The client's certificate (PEM).")
    private_key_path: FilePath = Field(description="The certificate's private key (PEM).")


class PulsarOAuth2Authentication(FrozenModel):
    """OAuth 2.0 client credentials (pulsar-client's `AuthenticationOauth2`): the client
    fetches a token from the issuer with a credentials file and sends it to the broker."""

    issuer_url: Text = Field(description="The identity provider's URL.")
    private_key: Text = Field(
        repr=False,
        description=(
            "The credentials JSON file (`client_id`, `client_secret`): a path, "
            "`file:///path`, or `data:application/json;base64,...`; never printed."
        ),
    )
    audience: Text | None = Field(default=None, description="The audience the token is for.")
    scope: Text | None = Field(default=None, description="The scope to ask for.")


class PulsarBasicAuthentication(FrozenModel):
    """A user name and password (pulsar-client's `AuthenticationBasic`)."""

    username: BasicText = Field(description="The user name (no `:`).")
    password: BasicText = Field(repr=False, description="The password (no `:`); never printed.")


class PulsarAuthentication(FrozenModel):
    """How the Pulsar clients authenticate: set exactly one key."""

    token: Text | None = Field(
        default=None,
        repr=False,
        description=(
            "A JWT (pulsar-client's `AuthenticationToken`), most often `${PULSAR_TOKEN}`; "
            "never printed."
        ),
    )
    token_file: FilePath | None = Field(
        default=None,
        description=(
            "A file holding the token (the whitespace around it dropped), read again at each "
            "connection: a mounted secret that is rotated takes effect at the next one."
        ),
    )
    tls: PulsarTlsAuthentication | None = Field(
        default=None, description="A client certificate (mutual TLS)."
    )
    oauth2: PulsarOAuth2Authentication | None = Field(
        default=None, description="OAuth 2.0 client credentials."
    )
    basic: PulsarBasicAuthentication | None = Field(
        default=None, description="A user name and password."
    )

    @property
    def method(self) -> str:
        """The key that is set (``token``, ``token_file``, ``tls``, ``oauth2``, ``basic``)."""
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)

    @model_validator(mode="after")
    def _one_method(self) -> PulsarAuthentication:
        chosen = [name for name in type(self).model_fields if getattr(self, name) is not None]
        every = ", ".join(type(self).model_fields)
        if not chosen:
            raise ConfigError(problems=[("", f"set one of {every} (or leave it out)")])
        if len(chosen) > 1:
            raise ConfigError(
                problems=[("", f"set one of {every}, not {' and '.join(chosen)} together")]
            )
        return self


class PulsarClientConfig(FrozenModel):
    """How the Pulsar clients connect: authentication and TLS. Every Pulsar client the
    instance makes gets these: the sources', the sinks', and the readiness probe's."""

    authentication: PulsarAuthentication | None = Field(
        default=None,
        description="How the clients authenticate (one of the keys below); unset: not at all.",
    )
    tls_trust_certs_file_path: FilePath | None = Field(
        default=None,
        description=(
            "The CA certificates (PEM) that signed the broker's certificate; unset: the "
            "system's. Needs a `pulsar+ssl://` (or `https://`) service URL, unless "
            "`authentication.oauth2` is set: pulsar-client checks the identity provider's "
            "`https` endpoints with it too, so a plaintext broker whose identity provider "
            "has a private CA sets it with a `pulsar://` URL."
        ),
    )
    tls_validate_hostname: Boolean = Field(
        default=True,
        description=(
            "Refuse a broker certificate that does not name the service URL's host "
            "(pulsar-client's default is false; librdkafka's, like this, true)."
        ),
    )
    tls_allow_insecure_connection: Boolean = Field(
        default=False,
        description=(
            "Accept any broker certificate, unverified (tests only: anyone between the "
            "service and the broker can read and change the records)."
        ),
    )

    def tls_keys(self) -> list[str]:
        """The keys set here that need a TLS service URL, as paths under ``pulsar``."""
        keys = []
        if self.tls_trust_certs_file_path is not None:
            keys.append("tls_trust_certs_file_path")
        if self.tls_allow_insecure_connection:
            keys.append("tls_allow_insecure_connection")
        if self.authentication is not None and self.authentication.tls is not None:
            keys.append("authentication.tls")
        return keys

    @property
    def uses_oauth2(self) -> bool:
        """Whether the clients fetch an OAuth 2.0 token: pulsar-client checks the
        issuer's ``https`` endpoints with ``tls_trust_certs_file_path`` too, whatever the
        service URL (see the field's description)."""
        return self.authentication is not None and self.authentication.oauth2 is not None


TLS_SCHEMES = ("pulsar+ssl", "https")
"""Service URL schemes over TLS."""


def is_tls_url(service_url: str) -> bool:
    """Whether ``service_url`` reaches the broker over TLS."""
    return service_url.partition("://")[0] in TLS_SCHEMES
