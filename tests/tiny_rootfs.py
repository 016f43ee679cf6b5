"""A root filesystem with a static bash and busybox and nothing else (no Python, no shared library), for
templates that have only what envd cannot rely on."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def tiny_rootfs(root: Path, tools: list[str], *, user: bool = True) -> Path:
    """``root`` with ``/bin/bash`` (bash-static), busybox and links to it for ``tools``, and root (plus
    ``user``, uid 1000, with a home, if asked) in ``/etc/passwd`` and ``/etc/group``."""
    for directory in ("bin", "etc", "root", "tmp", "home/user" if user else "home"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy2("/bin/bash-static", root / "bin/bash")
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    for tool in tools:
        (root / "bin" / tool).symlink_to("busybox")
    passwd, group = "root:x:0:0:root:/root:/bin/bash\n", "root:x:0:\n"
    if user:
        os.chown(root / "home/user", 1000, 1000)
        passwd += "user:x:1000:1000:user:/home/user:/bin/bash\n"
        group += "user:x:1000:\n"
    (root / "etc/passwd").write_text(passwd)
    (root / "etc/group").write_text(group)
    return root
