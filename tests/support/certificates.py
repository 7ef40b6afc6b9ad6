"""A throwaway certificate authority for TLS tests, made with the ``openssl`` command.

``cryptography`` is not among the project's dependencies and the ``openssl`` command is
on every machine the tests run on (it comes with the OpenSSL the interpreter's ``ssl``
links). One call of :func:`make_certificates` takes about 0.3 s: two CAs (the one that
signed the broker's certificate, and another that signed nothing the broker knows), a
server certificate for ``localhost`` only (not for 127.0.0.1, so that connecting by
address is a host name mismatch), and client certificates from each CA.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    """Paths of the PEM files :func:`make_certificates` wrote."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    """A client certificate the ``other_ca`` signed: one the broker does not trust."""
    stranger_key: Path

    def server_context(self, *, client_certificates: bool = False) -> ssl.SSLContext:
        """A server's TLS context; ``client_certificates``: require ones ``ca`` signed."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        if client_certificates:
            context.load_verify_locations(self.ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def _openssl(*args: str | Path, cwd: Path) -> None:
    command = shutil.which("openssl")
    if command is None:
        raise RuntimeError("the TLS tests need the openssl command")
    subprocess.run([command, *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _authority(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", key, "-out", cert, "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip
    return cert, key


def _signed(folder: Path, name: str, authority: tuple[Path, Path], san: str | None) -> Path:
    key, request, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request,
        "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip
    extensions = folder / f"{name}.ext"
    extensions.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl(
        "x509", "-req", "-in", request, "-CA", authority[0], "-CAkey", authority[1],
        "-CAcreateserial", "-days", "2", "-out", cert, "-extfile", extensions,
        cwd=folder,
    )  # fmt: skip
    return cert


def make_certificates(folder: Path) -> Certificates:
    """Write the CAs and certificates into ``folder``; see the module docstring."""
    folder = folder.resolve()
    ca = _authority(folder, "ca")
    other = _authority(folder, "other-ca")
    return Certificates(
        ca=ca[0],
        other_ca=other[0],
        server_cert=_signed(folder, "server", ca, "DNS:localhost"),
        server_key=folder / "server.key",
        client_cert=_signed(folder, "client", ca, None),
        client_key=folder / "client.key",
        stranger_cert=_signed(folder, "stranger", other, None),
        stranger_key=folder / "stranger.key",
    )
