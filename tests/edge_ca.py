"""The tests' certificate authority for the TLS edge: one per machine, in the template cache, shared by every
test stack that runs the edge (``tests/stack.py``), and trusted by the test process through ``SSL_CERT_FILE``
(the system's bundle plus this authority). Stacks the tests start run no edge unless they ask, and never
touch the system's trust store."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from hutch.private_files import private_directory, write_private
from hutch.proxy.certificates import ensure

DOMAIN = "hutch.localhost"
TLS_DIR = Path(os.environ.get("HUTCH_TEMPLATES__CACHE_DIR", "/var/cache/hutch")) / "test-ca"
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
EDGE_OFF = {"HUTCH_PROXY__TLS_PORT": "0", "HUTCH_PROXY__TRUST_LOCAL_CA": "false"}


def ca_path() -> Path:
    return TLS_DIR / "ca.crt"


def trust() -> dict[str, str]:
    """Make the authority and its certificate for ``hutch.localhost`` if missing (one worker at a time) and
    the bundle that trusts it; the variables that make the test process use it (none unless root)."""
    if os.geteuid() != 0:
        return {}
    private_directory(TLS_DIR)
    bundle = TLS_DIR / "bundle.pem"
    with open(TLS_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        edge = ensure(TLS_DIR, DOMAIN)
        assert edge.ca_path is not None
        system = SYSTEM_BUNDLE.read_text() if SYSTEM_BUNDLE.exists() else ""
        write_private(bundle, f"{system.rstrip()}\n{edge.ca_path.read_text()}")
    return {"SSL_CERT_FILE": str(bundle)}
