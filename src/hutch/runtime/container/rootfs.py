"""Per-sandbox root filesystems: an overlay whose writable layer is the sandbox's, over the template's.

The overlay is mounted ``nosuid,nodev`` on the host: a setuid program or a device node that root in a
sandbox plants in its layer does nothing for a host user who reaches the mount. The sandbox itself sees
its root through its engine's own mount namespace, where crun's start lifts ``nosuid`` again (``sudo``
works inside). For a crun sandbox (``ids``: it runs in a user namespace) the lower layers are shifted into
its host ids by idmapped mounts, its writable layer holds those host ids, and ``stored_upper`` shows that
layer shifted back, as it is stored (see ``idmap``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..idmap import FIRST, IdMap
from ..linux import detach, mount
from ..safe_path import Root

MS_NOSUID = 0x2
MS_NODEV = 0x4
_STORED_VIEW = "stored-upper-"


class Overlay:
    """One sandbox's overlay directories: ``upper`` (its writes) and ``work`` in ``layer`` (the sandbox's
    disk), and ``merged`` (its root). ``lower`` is the template's layers (top first, ``:``-joined)."""

    def __init__(self, sandbox_dir: Path, lower: Path, layer: Path, ids: IdMap | None = None) -> None:
        self.lower = lower
        self.upper = layer / "upper"
        self.work = layer / "work"
        self.merged = sandbox_dir / "rootfs"
        self.ids = ids
        self.sandbox_dir = sandbox_dir

    @property
    def owner(self) -> int:
        """The host id of the sandbox's root (user and group)."""
        return 0 if self.ids is None else FIRST

    def mount(self) -> None:
        for directory in (self.upper, self.work, self.merged):
            directory.mkdir(parents=True, exist_ok=True)
        os.chown(self.upper, self.owner, self.owner)  # the root directory the sandbox sees
        with contextlib.ExitStack() as views:
            lower = str(self.lower)
            if self.ids is not None:
                fds = [self.ids.view(Path(layer)) for layer in lower.split(":") if layer]
                for fd in fds:
                    views.callback(os.close, fd)  # the overlay keeps its own reference to each
                lower = ":".join(f"/proc/self/fd/{fd}" for fd in fds)
            options = f"lowerdir={lower},upperdir={self.upper},workdir={self.work}"
            mount("overlay", str(self.merged), "overlay", MS_NOSUID | MS_NODEV, options)

    def hand_over(self, *paths: str) -> None:
        """Give what the host just wrote at ``paths`` in the sandbox's root (and directories it made on the
        way) to the sandbox's root; run before the sandbox's processes start."""
        if self.ids is None:
            return
        with Root(self.merged) as tree:
            for path in paths:
                names = path.split("/")
                for depth in range(1, len(names) + 1):
                    found = tree.lstat("/".join(names[:depth]))
                    if found is not None and found.st_uid == 0:
                        fd = tree.open("/".join(names[:depth]), os.O_RDONLY | os.O_NOFOLLOW)
                        try:
                            os.fchown(fd, self.owner, self.owner)
                        finally:
                            os.close(fd)

    @contextlib.contextmanager
    def stored_upper(self) -> Iterator[Path]:
        """The writable layer with the ids stored layers have (a path valid inside the block)."""
        if self.ids is None:
            yield self.upper
            return
        view = self.sandbox_dir / f"{_STORED_VIEW}{secrets.token_hex(4)}"
        view.mkdir()
        try:
            self.ids.attach_back(self.upper, view)
            try:
                yield view
            finally:
                detach(str(view))
        finally:
            view.rmdir()

    def unmount(self) -> None:
        for view in self.sandbox_dir.glob(f"{_STORED_VIEW}*"):  # left by a node that stopped mid-copy
            detach(str(view))
        detach(str(self.merged))


def remove_tree(path: Path) -> None:
    """Delete a sandbox's directory (after its overlay is unmounted)."""
    shutil.rmtree(path, ignore_errors=True)
