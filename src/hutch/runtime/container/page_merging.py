"""The kernel's same-page merging (KSM) for the node's envds.

Every envd the fork server makes starts as the server's pages, shared; most of what envd writes later is
reference counts that go up and back down, so the pages it copied mostly hold again what the server's and
every other envd's hold. ``ksmd`` finds such pages and shares them again, read-only: an idle envd then
keeps 0.2 to 1.0 MiB of its own instead of 5.3 MiB. Only memory marked mergeable is scanned: the fork
server's (and so every envd's); sandboxes cannot mark theirs (seccomp).

``ksmd`` runs for the whole host, at the rate in ``/sys/kernel/mm/ksm`` (the kernel's default scans 100
pages every 20 ms: ~2% of a core, a full pass over 100 idle envds in ~80 s). The node turns it on and leaves
it on, since other nodes on the host may rely on it.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("hutch.runtime")

KSM_RUN = Path("/sys/kernel/mm/ksm/run")


def start(run: Path = KSM_RUN) -> bool:
    """Have ``ksmd`` run; True when it does. False, logged, where the kernel has no KSM, refuses, or was
    told to unmerge everything (``run`` = 2, an operator's choice the node leaves alone)."""
    try:
        state = run.read_text().strip()
        if state == "0":
            run.write_text("1")
            state = "1"
    except OSError as err:
        log.info("envd's pages are not merged: the kernel's same-page merging is unavailable (%s)", err)
        return False
    if state != "1":
        log.info("envd's pages are not merged: %s is %s", run, state)
        return False
    return True
