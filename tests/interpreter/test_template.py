"""The built ``code-interpreter-v1`` root filesystem: its server starts with ``START_CMD`` and works.

Runs the image's own python3 and packages in a chroot, inside a private mount namespace (``unshare -m``)
so that nothing stays mounted. Skipped until the template is built
(``python -m hutch.templates.code_interpreter``).
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2b_code_interpreter import Sandbox

from hutch.templates import code_interpreter
from tests.conftest import free_port, wait_http

from .conftest import stop

ROOTFS = code_interpreter.rootfs_path(Path("/var/cache/hutch"))
pytestmark = pytest.mark.skipif(not ROOTFS.exists(), reason=f"{ROOTFS} is not built")


@pytest.fixture(scope="module")
def image_url() -> Iterator[str]:
    port = free_port()
    start = code_interpreter.START_CMD.replace("--host 0.0.0.0", "--host 127.0.0.1").replace(
        f"--port {code_interpreter.PORT}", f"--port {port}"
    )
    root = shlex.quote(str(ROOTFS))
    script = "\n".join(
        [
            "mount --make-rprivate /",
            f"mount -t proc proc {root}/proc",
            f"mount --bind /dev {root}/dev",
            f"mount --bind /dev/pts {root}/dev/pts",
            f"exec chroot --userspec=user:user {root} env -i HOME=/home/user USER=user "
            f"PATH=/usr/local/bin:/usr/bin:/bin sh -c {shlex.quote('cd /home/user && ' + start)}",
        ]
    )
    process = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", timeout=60)
        ready = code_interpreter.READY_CMD.replace(str(code_interpreter.PORT), str(port))
        assert subprocess.run(["sh", "-c", ready]).returncode == 0
        yield url
    finally:
        stop(process)


def test_python_with_plots_and_dataframes(image_url: str):
    sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
    execution = sandbox.run_code("import os, sys; (os.getcwd(), os.getuid(), sys.version_info[:2])")
    assert execution.text == "('/home/user', 1000, (3, 11))"
    plot = sandbox.run_code("import matplotlib.pyplot as plt\nplt.plot([1, 2], [3, 4])\nplt.show()")
    [figure] = plot.results
    assert figure.png and figure.chart.type == "line"
    frame = sandbox.run_code("import pandas as pd\npd.DataFrame({'a': [1]})")
    assert "<table" in frame.results[0].html
    # the server's own package is not on the user's path
    assert sandbox.run_code("import os; 'PYTHONPATH' in os.environ").text == "False"


def test_bash(image_url: str):
    sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
    assert sandbox.run_code("whoami; pwd", language="bash").logs.stdout == ["user\n", "/home/user\n"]


def test_javascript(image_url: str):
    sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
    started = time.monotonic()
    assert sandbox.run_code("Deno.cwd()", language="js").text == "/home/user"
    assert time.monotonic() - started < 10
