"""What the envd tests look at on the host itself: processes, owners, file contents."""

from __future__ import annotations

import grp
import os
import pwd


def alive(pid: int) -> bool:
    """Whether ``pid`` names a process that has not terminated (zombies count as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def owner(path: str) -> str:
    return pwd.getpwuid(os.lstat(path).st_uid).pw_name


def group_of(user: str) -> str:
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def read_disk(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def make_file(path: str, data: bytes = b"") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def open_descriptors(pid: int) -> list[str]:
    """What a process has open, sockets left out (they come and go with the clients)."""
    fd_dir = f"/proc/{pid}/fd"
    targets = []
    for name in os.listdir(fd_dir):
        try:
            targets.append(os.readlink(os.path.join(fd_dir, name)))
        except FileNotFoundError:
            pass
    return sorted(t for t in targets if not t.startswith("socket:"))
