"""The OCI runtimes' command line as the backend calls it: a cancelled start waits for the runtime."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hutch.runtime.container.oci_cli import OciCli

# A runtime that takes its time, then writes its init's pid and a mark of having finished.
SLOW_RUNTIME = """#!/bin/sh
sleep 0.3
while [ "$1" != "--pid-file" ]; do shift; done
echo 1 > "$2"
touch "$(dirname "$2")/finished"
"""


@pytest.mark.asyncio
async def test_a_cancelled_start_returns_once_the_runtime_has_finished(tmp_path: Path) -> None:
    """An undo after a cancelled start (a client gone, the node stopping) must find everything the runtime
    made: a ``delete`` racing a still-running ``run`` would leave the container behind."""
    runtime = tmp_path / "runtime"
    runtime.write_text(SLOW_RUNTIME)
    runtime.chmod(0o700)
    cli = OciCli([str(runtime)], str(tmp_path / "state"))
    start = asyncio.create_task(cli.run_detached("c1", tmp_path, tmp_path / "log"))
    await asyncio.sleep(0.05)
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    assert (tmp_path / "finished").exists()
