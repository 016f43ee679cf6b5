"""The host's static busybox, when it has one: the init of crun sandboxes whose envd is forked, and the
tools of the fork server's root (``envd_fork``). A static binary starts without the dynamic loader, and its
``mount`` does not parse every mount of the host through libmount as util-linux's does (a node with many
sandboxes has thousands)."""

from __future__ import annotations

import functools
import shutil
import struct
from pathlib import Path

PT_INTERP = 3  # an ELF program header naming a dynamic loader


@functools.cache
def static_busybox() -> Path | None:
    """The host's busybox if it is a statically linked 64-bit ELF (it runs in any template), else None."""
    found = shutil.which("busybox")
    if found is None:
        return None
    return _static(Path(found).resolve())


def _static(path: Path) -> Path | None:
    with path.open("rb") as f:
        header = f.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2:
            return None
        (table_at,) = struct.unpack_from("<Q", header, 32)
        entry_size, entries = struct.unpack_from("<HH", header, 54)
        f.seek(table_at)
        table = f.read(entry_size * entries)
    if len(table) < entry_size * entries:
        return None
    kinds = [struct.unpack_from("<I", table, i * entry_size)[0] for i in range(entries)]
    return None if PT_INTERP in kinds else path
