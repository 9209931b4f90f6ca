"""TLS for the gRPC port (Triton's ``--grpc-use-ssl*`` flags) and the HTTP port (tritonlite's
``--http-ssl-*`` flags; Triton's HTTP port has no TLS of its own).

The files are read and checked with Python's ``ssl`` module before a port opens, so that a missing
file, a certificate that is not PEM or a key that does not match it stops the server with a message
that names the flag, instead of a failed bind.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _read(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {flag} '{path}': {exc.strerror or exc}") from None


def _check_pair(cert: str, key: str, cert_flag: str, key_flag: str) -> None:
    """The certificate and key load together (PEM, and the key is the certificate's)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ValueError(
            f"{cert_flag} '{cert}' and {key_flag} '{key}' are no PEM certificate and its key: {exc}"
        ) from None


def _check_roots(path: str, flag: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise ValueError(f"{flag} '{path}' holds no PEM certificate: {exc}") from None


@dataclass(frozen=True)
class GrpcTls:
    """Triton's gRPC TLS flags: ``--grpc-use-ssl-mutual`` implies ``--grpc-use-ssl`` and requires
    clients to present a certificate that ``--grpc-root-cert`` signed."""

    use_ssl: bool = False
    mutual: bool = False
    server_cert: str = ""
    server_key: str = ""
    root_cert: str = ""

    @property
    def enabled(self) -> bool:
        return self.use_ssl or self.mutual

    def ssl_context(self) -> ssl.SSLContext:
        """The server's TLS settings for these files (HTTP/2 by ALPN, as gRPC clients require); ValueError
        names a file that does not do."""
        _read(self.server_cert, "--grpc-server-cert")
        _read(self.server_key, "--grpc-server-key")
        _check_pair(self.server_cert, self.server_key, "--grpc-server-cert", "--grpc-server-key")
        if self.root_cert:
            _read(self.root_cert, "--grpc-root-cert")
            _check_roots(self.root_cert, "--grpc-root-cert")
        elif self.mutual:
            raise ValueError("--grpc-use-ssl-mutual needs --grpc-root-cert: the certificates that sign clients'")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert, self.server_key)
        context.set_alpn_protocols(["h2"])
        if self.root_cert:
            context.load_verify_locations(cafile=self.root_cert)
        if self.mutual:
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@dataclass(frozen=True)
class HttpTls:
    """HTTPS on the HTTP port through uvicorn's TLS settings; ``ca_certs`` makes client certificates
    signed by those CAs mandatory."""

    certfile: str = ""
    keyfile: str = ""
    ca_certs: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.certfile)

    def uvicorn_options(self) -> dict[str, Any]:
        """uvicorn.Config's ssl_* settings (none when HTTPS is off); ValueError names a bad file."""
        if not self.enabled:
            if self.keyfile or self.ca_certs:
                raise ValueError("--http-ssl-keyfile and --http-ssl-ca-certs need --http-ssl-certfile")
            return {}
        _read(self.certfile, "--http-ssl-certfile")
        if self.keyfile:
            _read(self.keyfile, "--http-ssl-keyfile")
        _check_pair(self.certfile, self.keyfile or self.certfile, "--http-ssl-certfile", "--http-ssl-keyfile")
        options: dict[str, Any] = {"ssl_certfile": self.certfile, "ssl_keyfile": self.keyfile or None}
        if self.ca_certs:
            _read(self.ca_certs, "--http-ssl-ca-certs")
            _check_roots(self.ca_certs, "--http-ssl-ca-certs")
            options.update(ssl_ca_certs=self.ca_certs, ssl_cert_reqs=ssl.CERT_REQUIRED)
        return options
