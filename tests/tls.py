"""A self-signed certificate and an HTTPS variant of the loopback receiver, for TLS tests."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.receiver import Receiver


def self_signed_certificate(directory: Path, host_name: str) -> tuple[Path, Path]:
    """Write a certificate for ``host_name`` signed by its own key; return (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{host_name}.crt"
    key_path = directory / f"{host_name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class TLSReceiver(Receiver):
    """A :class:`Receiver` speaking HTTPS with the given certificate; records the SNI names sent."""

    def __init__(self, cert_path: Path, key_path: Path, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.server_names: list[str | None] = []
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_path, key_path)
        self.context.sni_callback = self._record_server_name

    def _record_server_name(self, ssl_socket, server_name, context) -> None:
        self.server_names.append(server_name)

    def start(self) -> TLSReceiver:
        super().start()
        server = self._server
        assert server is not None
        # Wrapped before any client connects; handshakes run lazily in the handler threads.
        server.socket = self.context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.handle_error = lambda request, client_address: None
        return self

    def url(self, path: str = "/hook", host_name: str | None = None) -> str:
        return f"https://{host_name or self.host}:{self.port}{path}"
