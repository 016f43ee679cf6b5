"""The edge's TLS certificate: a local certificate authority made once per installation, and a certificate
for ``<host>`` and ``*.<host>`` that it signs (``host`` is the domain without its port).

The authority's certificate carries a critical name constraint that permits only ``<host>`` and its
subdomains and excludes every IP address, so that its key, if it leaked, could sign nothing else a client
would accept. Both keys are EC P-256. Files in the TLS directory (``0700``): ``ca.key`` (``0600``),
``ca.crt``, and ``edge.pem`` (``0600``: the certificate, then its key, as HAProxy's ``crt`` wants).

:func:`ensure` re-issues what is missing or stale: the certificate when it expires within
:data:`RENEW_BEFORE`, names other hosts or was not signed by the current authority; the authority too
when it names another host (its constraint is the domain) or expires within :data:`RENEW_BEFORE`.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..private_files import private_directory, write_private

CA_VALIDITY = datetime.timedelta(days=10 * 365)
LEAF_VALIDITY = datetime.timedelta(days=397)
RENEW_BEFORE = datetime.timedelta(days=30)
CA_CERTIFICATE = "ca.crt"
CA_KEY = "ca.key"
EDGE_PEM = "edge.pem"


@dataclass(frozen=True)
class EdgeCertificate:
    """What the edge serves: one PEM file with the certificate and its key, and the certificate of the
    authority that clients must trust (``None`` for a certificate the operator gave)."""

    pem_path: Path
    ca_path: Path | None


def host_of(domain: str) -> str:
    """The host name of a domain that may carry a port: ``hutch.localhost:8443`` → ``hutch.localhost``."""
    name, colon, port = domain.rpartition(":")
    return (name if colon and port.isdigit() else domain).lower().rstrip(".")


def ensure(tls_dir: Path, host: str, *, now: datetime.datetime | None = None) -> EdgeCertificate:
    """The authority and the edge certificate for ``host`` in ``tls_dir``, (re-)issued as needed."""
    now = now or datetime.datetime.now(datetime.UTC)
    private_directory(tls_dir)
    ca_path, ca_key_path, pem_path = tls_dir / CA_CERTIFICATE, tls_dir / CA_KEY, tls_dir / EDGE_PEM
    ca = _load_ca(ca_path, ca_key_path)
    if ca is None or not _ca_fits(ca[0], host, now):
        ca = _issue_ca(host, now)
        write_private(ca_key_path, _key_pem(ca[1]))
        write_private(ca_path, ca[0].public_bytes(serialization.Encoding.PEM).decode())
        ca_path.chmod(0o644)  # a certificate, for clients to trust
        pem_path.unlink(missing_ok=True)
    if not _leaf_fits(pem_path, ca[0], host, now):
        leaf, key = _issue_leaf(host, ca, now)
        write_private(pem_path, leaf.public_bytes(serialization.Encoding.PEM).decode() + _key_pem(key))
    return EdgeCertificate(pem_path=pem_path, ca_path=ca_path)


def fingerprint(certificate_path: Path) -> str:
    """The SHA-256 fingerprint of a PEM certificate, in hex."""
    certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    return certificate.fingerprint(hashes.SHA256()).hex()


def _load_ca(ca_path: Path, key_path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        certificate = x509.load_pem_x509_certificate(ca_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != certificate.public_key():
        return None
    return certificate, key


def _ca_fits(ca: x509.Certificate, host: str, now: datetime.datetime) -> bool:
    try:
        constraints = ca.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return False
    return (
        constraints.permitted_subtrees == [x509.DNSName(host)] and ca.not_valid_after_utc - now > RENEW_BEFORE
    )


def _leaf_fits(pem_path: Path, ca: x509.Certificate, host: str, now: datetime.datetime) -> bool:
    try:
        leaf = x509.load_pem_x509_certificate(pem_path.read_bytes())
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        leaf.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    expected = {host, f"*.{host}"}
    return (
        set(names.get_values_for_type(x509.DNSName)) == expected
        and leaf.not_valid_after_utc - now > RENEW_BEFORE
    )


def _issue_ca(host: str, now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hutch"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Hutch local CA for {host}"),
        ]
    )
    excluded: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
        x509.IPAddress(ipaddress.ip_network("::/0")),
    ]
    certificate = (
        _builder(name, name, key.public_key(), now, CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.NameConstraints([x509.DNSName(host)], excluded), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def _issue_leaf(
    host: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], now: datetime.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_certificate, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    certificate = (
        _builder(subject, ca_certificate.subject, key.public_key(), now, LEAF_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(host), x509.DNSName(f"*.{host}")]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return certificate, key


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    validity: datetime.timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks a little behind
        .not_valid_after(now + validity)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
