"""The built ``code-interpreter-v1`` image's server, started with the template's ``START_CMD`` as ``user``
in a chroot of the image, inside a mount namespace of its own (``unshare -m``) so that nothing stays
mounted: for the tests of the image and ``bench/interpreter_stress.py --image``."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

from hutch.templates import code_interpreter


def start(image: Path, port: int, **popen: Any) -> subprocess.Popen:
    """The server of ``image`` on loopback ``port`` (``popen``: ``subprocess.Popen``'s other arguments)."""
    command = code_interpreter.START_CMD.replace("--host 0.0.0.0", "--host 127.0.0.1").replace(
        f"--port {code_interpreter.PORT}", f"--port {port}"
    )
    root = shlex.quote(str(image))
    script = "\n".join(
        [
            "mount --make-rprivate /",
            f"mount -t proc proc {root}/proc",
            f"mount --bind /dev {root}/dev",
            f"mount --bind /dev/pts {root}/dev/pts",
            f"exec chroot --userspec=user:user {root} env -i HOME=/home/user USER=user "
            f"PATH=/usr/local/bin:/usr/bin:/bin sh -c {shlex.quote('cd /home/user && ' + command)}",
        ]
    )
    return subprocess.Popen(["unshare", "-m", "sh", "-c", script], stdin=subprocess.DEVNULL, **popen)
