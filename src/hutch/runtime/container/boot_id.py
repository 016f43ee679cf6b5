"""A sandbox's own ``/proc/sys/kernel/random/boot_id``, which behaves like a machine's: the same across a
pause that keeps its memory, a new one whenever it boots (created, or resumed from a filesystem-only
pause). It is a file on the sandbox's own disk (beside its overlay's layers, so whatever is written to it
counts against the sandbox's quota), bind-mounted read-only over the kernel's. The bind is read-only only
where the engine keeps it so (crun's read-only remount of ``/proc/sys`` copies it writable): root in the
sandbox may change its own boot id, as it could fake it anyway."""

from __future__ import annotations

import uuid
from pathlib import Path

from ..safe_path import Root

PATH = "/proc/sys/kernel/random/boot_id"
FILE = "boot_id"
MAX_SIZE = 64


def renew(directory: Path) -> str:
    """A new boot id on the sandbox's disk mounted at ``directory`` (before each boot); returns it."""
    value = str(uuid.uuid4())
    write(directory, value)
    return value


def read(directory: Path) -> str:
    """The boot id on the disk mounted at ``directory``. Root in a sandbox may have written anything there:
    what is not a boot id reads as a new one."""
    with Root(directory) as disk:
        text = disk.read_bytes(FILE, MAX_SIZE).decode(errors="replace").strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return str(uuid.uuid4())


def write(directory: Path, value: str) -> None:
    """Put ``value`` (a boot id, as ``read`` returns it) on the disk mounted at ``directory``."""
    with Root(directory) as disk:
        disk.write_file(FILE, str(uuid.UUID(value.strip())) + "\n")


def mount(config: dict, directory: Path) -> None:
    """Add the bind mount of the boot id on the disk mounted at ``directory`` to the OCI ``config``."""
    source = str(directory / FILE)
    config["mounts"].append(
        {
            "destination": PATH,
            "type": "bind",
            "source": source,
            "options": ["bind", "ro", "nosuid", "nodev", "noexec"],
        }
    )
