"""A throwaway PostgreSQL server from the machine's own binaries (Debian's ``postgresql`` package), for the
catalog's tests and the cluster's: started in a temporary directory on a free port, with ``trust`` for the
addresses it listens on, and removed afterwards."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.conftest import free_port


def _as_postgres_user(argv: list[str]) -> list[str]:
    """initdb refuses to run as root: run the server tools as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@contextlib.contextmanager
def postgres_server(listen: Sequence[str] = ("127.0.0.1",), trusted: Sequence[str] = ()) -> Iterator[str]:
    """``postgresql://hutch@127.0.0.1:<port>/postgres`` of a new server listening on ``listen``, which
    trusts clients from loopback and the networks ``trusted``; skips the test without the binaries."""
    # Debian keeps the server tools out of PATH, in /usr/lib/postgresql/<version>/bin.
    search = os.pathsep.join([os.environ.get("PATH", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"))])
    initdb, pg_ctl = shutil.which("initdb", path=search), shutil.which("pg_ctl", path=search)
    if not initdb or not pg_ctl:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a postgres user to run the server as")
    base = Path(tempfile.mkdtemp(prefix="hutch-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    port = free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
    subprocess.run(
        _as_postgres_user([initdb, "-D", str(data), "-A", "trust", "-U", "hutch", "--no-sync"]), **quiet
    )
    if trusted:
        with open(data / "pg_hba.conf", "a") as hba:
            hba.writelines(f"host all all {network} trust\n" for network in trusted)
    addresses = ",".join(listen)
    options = f"-p {port} -k {base} -c listen_addresses={addresses} -c fsync=off -c max_connections=300"
    start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"]
    subprocess.run(_as_postgres_user(start), **quiet)
    try:
        yield f"postgresql://hutch@127.0.0.1:{port}/postgres"
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]
        subprocess.run(_as_postgres_user(stop), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)
