"""A sandbox's own certificate authority, with which the egress proxy terminates the TLS connections it
rewrites (``intercept``), and the trust files that make that sandbox, and only it, trust it.

The CA is made with the sandbox (an EC P-256 key and a self-signed certificate, valid for ten years, that
may sign only end-entity certificates). Its key stays in the sandbox's directory on the host, readable by
root only (``ca.key``); the sandbox gets its certificate alone. Leaf certificates (one per host name, valid
for a week, all with one key of the CA's) are made when a name is first intercepted and kept in a bounded
cache of ready TLS contexts.

The trust files, in ``trust/`` of the sandbox's directory, are bound read-only into the sandbox as the
directory ``/usr/local/lib/hutch/trust``, next to envd's own read-only files: ``egress-ca.pem`` (the CA
alone) and, when the template has a system bundle, ``ca-bundle.pem`` (that bundle, read through
``safe_path`` from the sandbox's tree, then the sandbox's CA). ``trust_env`` points the usual variables at
them for the processes envd starts. Nothing is mounted into the sandbox's ``/etc``: its system bundle stays
the tenant's to change (``update-ca-certificates``, ``apt``), and its ``/etc`` to remove. The host's own
trust store is never touched.
"""

from __future__ import annotations

import datetime
import os
import ssl
import threading
from collections import OrderedDict
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ....private_files import write_private
from ...safe_path import Root

KEY, CERT = "ca.key", "ca.pem"
TRUST = "trust"
BUNDLE, CA_ONLY = "ca-bundle.pem", "egress-ca.pem"
SYSTEM_BUNDLE = "etc/ssl/certs/ca-certificates.crt"  # Debian, Ubuntu, Alpine, Arch
SANDBOX_TRUST = "/usr/local/lib/hutch/trust"
SANDBOX_BUNDLE, SANDBOX_CA = f"{SANDBOX_TRUST}/{BUNDLE}", f"{SANDBOX_TRUST}/{CA_ONLY}"
MAX_SYSTEM_BUNDLE = 4 * 1024 * 1024
LEAF_CACHE = 256  # TLS contexts kept per sandbox
LEAF_DAYS = 7
BUNDLE_ENV = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class Authority:
    """One sandbox's CA: its key and certificate, and TLS server contexts for the names it signs."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self.key = key
        self.certificate = certificate
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        self._contexts: OrderedDict[str, tuple[ssl.SSLContext, datetime.datetime]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def create(cls, directory: Path) -> Authority:
        """A new CA whose key and certificate are written to ``directory`` (root only)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Hutch egress CA {directory.name}")])
        now = _now()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        pem_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private(directory / KEY, pem_key.decode())
        write_private(directory / CERT, certificate.public_bytes(serialization.Encoding.PEM).decode())
        return cls(key, certificate)

    @classmethod
    def load(cls, directory: Path) -> Authority:
        """The CA kept in ``directory`` (host-side files the sandbox never reaches)."""
        key = serialization.load_pem_private_key((directory / KEY).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the egress CA key is not an EC key")
        return cls(key, x509.load_pem_x509_certificate((directory / CERT).read_bytes()))

    @classmethod
    def load_or_create(cls, directory: Path) -> Authority:
        if (directory / KEY).exists():
            return cls.load(directory)
        return cls.create(directory)

    def context_for(self, name: str) -> ssl.SSLContext:
        """A TLS server context presenting a certificate for ``name`` (normalised) signed by this CA,
        offering only HTTP/1.1 by ALPN; made on first use, then cached (``LEAF_CACHE`` names)."""
        with self._lock:
            found = self._contexts.get(name)
            if found is not None and found[1] - _now() > datetime.timedelta(days=1):
                self._contexts.move_to_end(name)
                return found[0]
        context, expires = self._leaf_context(name)
        with self._lock:
            self._contexts[name] = (context, expires)
            self._contexts.move_to_end(name)
            while len(self._contexts) > LEAF_CACHE:
                self._contexts.popitem(last=False)
        return context

    def _leaf_context(self, name: str) -> tuple[ssl.SSLContext, datetime.datetime]:
        now = _now()
        expires = now + datetime.timedelta(days=LEAF_DAYS)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(expires)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        chain = certificate.public_bytes(serialization.Encoding.PEM) + self.pem
        key = self._leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        _load_chain(context, chain, key)
        return context, expires


def _load_chain(context: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    """Load a certificate chain and key held in memory (``ssl`` reads only files: anonymous ones here)."""
    fds = [os.memfd_create("hutch-leaf", os.MFD_CLOEXEC) for _ in range(2)]
    try:
        for fd, data in zip(fds, (chain, key), strict=True):
            os.write(fd, data)
        context.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
    finally:
        for fd in fds:
            os.close(fd)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def prepare_trust(directory: Path, rootfs: Path) -> list[dict]:
    """Make the sandbox's CA in ``directory`` (if it has none) and its trust files; ``rootfs`` is the
    sandbox's tree, where the template's system bundle is read. The OCI bind mount of the files."""
    authority = Authority.load_or_create(directory)
    try:
        with Root(rootfs) as tree:
            system = tree.read_bytes(SYSTEM_BUNDLE, MAX_SYSTEM_BUNDLE)
    except OSError:
        system = None
    trust = directory / TRUST
    trust.mkdir(mode=0o755, exist_ok=True)
    files = {CA_ONLY: authority.pem}
    if system:
        files[BUNDLE] = system.rstrip(b"\n") + b"\n" + authority.pem
    for name, data in files.items():
        (trust / name).write_bytes(data)
        os.chmod(trust / name, 0o644)
    options = ["bind", "ro", "nosuid", "nodev", "noexec"]
    return [{"destination": SANDBOX_TRUST, "type": "bind", "source": str(trust), "options": options}]


def has_trust(directory: Path) -> bool:
    """Whether the sandbox in ``directory`` was given a CA (started on a node with an egress proxy)."""
    return (directory / TRUST / CA_ONLY).is_file()


def trust_env(directory: Path) -> dict[str, str]:
    """The variables envd gives every process of the sandbox in ``directory``, so that the usual TLS
    clients trust its CA (none without one)."""
    if not has_trust(directory):
        return {}
    env = {"NODE_EXTRA_CA_CERTS": SANDBOX_CA}
    if (directory / TRUST / BUNDLE).is_file():
        env.update(dict.fromkeys(BUNDLE_ENV, SANDBOX_BUNDLE))
    return env
