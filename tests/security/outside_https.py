"""What the egress secrets tests' outsides share: a test CA with a server certificate for some names, and
the outside itself (``egress_outside.py``: HTTPS, SOCKS5, UDP echoes) started in a network namespace joined
to the host, stopped with everything it made."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.security.test_egress import serve_outside

SCRIPT = Path(__file__).with_name("egress_outside.py")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(site: Path, names: Sequence[str]) -> Path:
    """A test CA (``site/ca.pem``) and the server's certificate for ``names`` (``cert.pem``, ``key.pem``);
    returns the CA's path."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", str(site / "ca.key"), "-out", str(site / "ca.pem"),
             "-days", "1", "-subj", "/CN=Hutch test outside CA")  # fmt: skip
    _openssl("req", "-new", *ec, "-keyout", str(site / "key.pem"), "-out", str(site / "req.pem"),
             "-subj", f"/CN={names[0]}")  # fmt: skip
    (site / "ext").write_text("subjectAltName=" + ",".join(f"DNS:{name}" for name in names) + "\n")
    _openssl("x509", "-req", "-in", str(site / "req.pem"), "-CA", str(site / "ca.pem"),
             "-CAkey", str(site / "ca.key"), "-CAcreateserial", "-out", str(site / "cert.pem"),
             "-days", "1", "-extfile", str(site / "ext"))  # fmt: skip
    return site / "ca.pem"


@contextlib.contextmanager
def running_outside(
    site: Path,
    *,
    netns: str,
    uplink: str,
    host_ip: str,
    gateway: str,
    addresses: list[str],
    socks_login: tuple[str, str],
) -> Iterator[None]:
    """The outside in ``netns`` behind the host's ``uplink``, serving ``addresses`` with ``site``'s
    certificate and logging to ``site``; removed on exit."""
    server = None
    subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
    try:
        serve_outside(netns, uplink, host_ip, gateway, addresses)
        server = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, str(SCRIPT),
             str(site / "cert.pem"), str(site / "key.pem"), str(site / "https.log"), str(site / "socks.log"),
             *socks_login, *addresses],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert server.stdout is not None and server.stdout.readline() == b"ready\n"
        yield
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", uplink], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)
