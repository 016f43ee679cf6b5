"""The local certificate authority in the system's trust store (Debian's ``update-ca-certificates``), so
that the SDKs, curl and other programs of this machine trust the edge with no setting of their own.

The certificate goes to ``/usr/local/share/ca-certificates/hutch-<fingerprint prefix>.crt`` once; the
file name is remembered in the TLS directory, and a previous authority of the same installation (one made
for another domain) is taken out when a new one goes in. Browsers keep stores of their own: see
``docs/quickstart.md``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .certificates import fingerprint

SYSTEM_STORE = Path("/usr/local/share/ca-certificates")
# In the TLS directory: the system store's copy of this installation's authority.
INSTALLED = "system-store"


def install(ca_path: Path, *, store: Path = SYSTEM_STORE) -> Path | None:
    """Put the authority in ``ca_path`` into the system store; the file it now is there, or ``None`` if it
    was there already. ``OSError`` (or ``CalledProcessError``) if the store cannot be updated."""
    target = store / f"hutch-{fingerprint(ca_path)[:16]}.crt"
    if target.exists():
        return None
    record = ca_path.parent / INSTALLED
    previous = Path(record.read_text().strip()) if record.exists() else None
    store.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca_path, target)
    target.chmod(0o644)
    if previous is not None and previous != target and previous.parent == store:
        previous.unlink(missing_ok=True)
    record.write_text(f"{target}\n")
    subprocess.run(["update-ca-certificates"], check=True, capture_output=True)
    return target
