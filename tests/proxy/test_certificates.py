"""The edge's local certificate authority and certificate: what they permit, and when they are re-issued."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from hutch.proxy import certificates
from hutch.proxy.certificates import ensure, host_of

HOST = "hutch.localhost"
NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


def _leaf(pem_path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem_path.read_bytes())


def _ca(tls_dir: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((tls_dir / certificates.CA_CERTIFICATE).read_bytes())


def _verify(ca: x509.Certificate, leaf: x509.Certificate, name: str) -> None:
    verifier = PolicyBuilder().store(Store([ca])).time(NOW).build_server_verifier(x509.DNSName(name))
    verifier.verify(leaf, [])


@pytest.mark.parametrize("name", [HOST, f"api.{HOST}", f"8000-abc123.{HOST}", f"49983-x1.{HOST}"])
def test_the_chain_verifies_for_the_domain_and_its_subdomains(tmp_path, name):
    edge = ensure(tmp_path, HOST, now=NOW)
    _verify(_ca(tmp_path), _leaf(edge.pem_path), name)


@pytest.mark.parametrize("name", ["example.com", "localhost", "a.b.hutch.localhost", "hutch.localhost.evil"])
def test_the_chain_does_not_verify_for_other_names(tmp_path, name):
    edge = ensure(tmp_path, HOST, now=NOW)
    with pytest.raises(VerificationError):
        _verify(_ca(tmp_path), _leaf(edge.pem_path), name)


def test_the_authority_can_sign_nothing_outside_the_domain(tmp_path):
    ensure(tmp_path, HOST, now=NOW)
    ca = _ca(tmp_path)
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [x509.DNSName(HOST)]
    assert {str(tree.value) for tree in constraints.value.excluded_subtrees} == {"0.0.0.0/0", "::/0"}
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert basic.ca and usage.key_cert_sign and usage.crl_sign and not usage.digital_signature

    # Its key, leaked, signs a certificate for another name: no client following the constraint takes it.
    key = serialization.load_pem_private_key((tmp_path / certificates.CA_KEY).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "example.com")]))
        .issuer_name(ca.subject)
        .public_key(rogue_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("example.com")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(VerificationError):
        _verify(ca, rogue, "example.com")


def test_files_and_their_modes(tmp_path):
    tls_dir = tmp_path / "tls"
    edge = ensure(tls_dir, HOST, now=NOW)
    assert edge.ca_path == tls_dir / "ca.crt" and edge.pem_path == tls_dir / "edge.pem"
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((tls_dir / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(edge.pem_path.stat().st_mode) == 0o600
    pem = edge.pem_path.read_text()
    assert pem.index("BEGIN CERTIFICATE") < pem.index("BEGIN PRIVATE KEY")
    leaf, ca = _leaf(edge.pem_path), _ca(tls_dir)
    assert leaf.not_valid_after_utc - NOW == certificates.LEAF_VALIDITY
    assert ca.not_valid_after_utc - NOW == certificates.CA_VALIDITY
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)


def test_nothing_is_issued_again_while_it_fits(tmp_path):
    edge = ensure(tmp_path, HOST, now=NOW)
    before = (edge.pem_path.read_bytes(), edge.ca_path.read_bytes())
    again = ensure(tmp_path, HOST, now=NOW + datetime.timedelta(days=300))
    assert (again.pem_path.read_bytes(), again.ca_path.read_bytes()) == before


def test_a_certificate_near_its_end_is_issued_again_by_the_same_authority(tmp_path):
    edge = ensure(tmp_path, HOST, now=NOW)
    ca, leaf = edge.ca_path.read_bytes(), _leaf(edge.pem_path)
    later = NOW + certificates.LEAF_VALIDITY - datetime.timedelta(days=29)
    ensure(tmp_path, HOST, now=later)
    assert edge.ca_path.read_bytes() == ca
    renewed = _leaf(edge.pem_path)
    assert renewed.serial_number != leaf.serial_number
    assert renewed.not_valid_after_utc - later == certificates.LEAF_VALIDITY


def test_a_missing_certificate_is_issued_again(tmp_path):
    edge = ensure(tmp_path, HOST, now=NOW)
    ca = edge.ca_path.read_bytes()
    edge.pem_path.unlink()
    ensure(tmp_path, HOST, now=NOW)
    assert edge.ca_path.read_bytes() == ca
    _verify(_ca(tmp_path), _leaf(edge.pem_path), f"api.{HOST}")


def test_another_domain_gets_a_new_authority(tmp_path):
    first = ensure(tmp_path, HOST, now=NOW)
    ca = first.ca_path.read_bytes()
    second = ensure(tmp_path, "sandboxes.example.com", now=NOW)
    assert second.ca_path.read_bytes() != ca
    _verify(_ca(tmp_path), _leaf(second.pem_path), "8000-abc.sandboxes.example.com")
    with pytest.raises(VerificationError):
        _verify(_ca(tmp_path), _leaf(second.pem_path), f"api.{HOST}")


def test_an_authority_near_its_end_is_replaced(tmp_path):
    first = ensure(tmp_path, HOST, now=NOW)
    ca = first.ca_path.read_bytes()
    ensure(tmp_path, HOST, now=NOW + certificates.CA_VALIDITY - datetime.timedelta(days=10))
    assert first.ca_path.read_bytes() != ca


@pytest.mark.parametrize(
    ("domain", "host"),
    [
        ("hutch.localhost", HOST),
        ("hutch.localhost:8443", HOST),
        ("Sandboxes.Example.com.", "sandboxes.example.com"),
    ],
)
def test_host_of_a_domain(domain, host):
    assert host_of(domain) == host
