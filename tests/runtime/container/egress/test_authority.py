"""A sandbox's CA: made once and kept host-side (root only), leaf certificates a client trusting that CA
alone accepts for the name only, a bounded cache, and the trust files bound into the sandbox."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from hutch.runtime.container.egress import authority
from hutch.runtime.container.egress.authority import Authority, prepare_trust, trust_env


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> str | None:
    """The ALPN protocol agreed, or raise the client's verification error."""
    left, right = socket.socketpair()
    with left, right:
        done = threading.Thread(target=lambda: _serve(server, right), daemon=True)
        done.start()
        with client.wrap_socket(left, server_hostname=name) as tls:
            return tls.selected_alpn_protocol()


def _serve(server: ssl.SSLContext, sock: socket.socket) -> None:
    try:
        with server.wrap_socket(sock, server_side=True) as tls:
            tls.recv(1)
    except (ssl.SSLError, OSError):
        pass


def test_leaf_certificates_for_the_sandbox_only(tmp_path):
    ca = Authority.create(tmp_path)
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"
    assert Authority.load(tmp_path).pem == ca.pem
    client = ssl.create_default_context(cadata=ca.pem.decode())
    client.set_alpn_protocols(["h2", "http/1.1"])
    assert _handshake(ca.context_for("api.test"), client, "api.test") == "http/1.1"
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(ca.context_for("api.test"), client, "other.test")
    (tmp_path / "other").mkdir()
    other = Authority.create(tmp_path / "other")
    stranger = ssl.create_default_context(cadata=other.pem.decode())
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(ca.context_for("api.test"), stranger, "api.test")


def test_the_leaf_cache_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(authority, "LEAF_CACHE", 3)
    ca = Authority.create(tmp_path)
    first = ca.context_for("a.test")
    assert ca.context_for("a.test") is first
    for name in ("b.test", "c.test", "d.test"):
        ca.context_for(name)
    assert len(ca._contexts) == 3 and "a.test" not in ca._contexts


def test_trust_files_and_variables(tmp_path):
    rootfs, directory = tmp_path / "rootfs", tmp_path / "sandbox"
    directory.mkdir()
    (rootfs / "etc/ssl/certs").mkdir(parents=True)
    (rootfs / "etc/ssl/certs/ca-certificates.crt").write_text("SYSTEM\n")
    mounts = prepare_trust(directory, rootfs)
    # one read-only directory beside envd's files; nothing in the sandbox's /etc
    assert [(m["destination"], m["source"]) for m in mounts] == [
        ("/usr/local/lib/hutch/trust", str(directory / "trust"))
    ]
    assert all("ro" in m["options"] for m in mounts)
    bundle = (directory / "trust/ca-bundle.pem").read_bytes()
    assert bundle.startswith(b"SYSTEM\n") and bundle.endswith(Authority.load(directory).pem)
    assert trust_env(directory)["SSL_CERT_FILE"] == "/usr/local/lib/hutch/trust/ca-bundle.pem"
    # The same CA on the next start (a boot after a pause); no system bundle: the CA alone, fewer variables.
    pem = Authority.load(directory).pem
    bare, again = tmp_path / "bare", tmp_path / "again"
    bare.mkdir()
    again.mkdir()
    prepare_trust(directory, bare)
    assert Authority.load(directory).pem == pem
    prepare_trust(again, bare)
    assert sorted(path.name for path in (again / "trust").iterdir()) == ["egress-ca.pem"]
    assert trust_env(again) == {"NODE_EXTRA_CA_CERTS": "/usr/local/lib/hutch/trust/egress-ca.pem"}


def test_a_system_bundle_that_links_out_of_the_tree_is_not_followed(tmp_path):
    rootfs, directory = tmp_path / "rootfs", tmp_path / "sandbox"
    directory.mkdir()
    (rootfs / "etc/ssl/certs").mkdir(parents=True)
    secret = tmp_path / "host-secret"
    secret.write_text("HOST ONLY\n")
    (rootfs / "etc/ssl/certs/ca-certificates.crt").symlink_to(secret)
    prepare_trust(directory, rootfs)
    assert b"HOST ONLY" not in b"".join(p.read_bytes() for p in (directory / "trust").iterdir())
