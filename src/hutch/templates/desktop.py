"""The ``desktop`` template: an Xfce desktop for ``e2b-desktop``, built by mmdebstrap from Debian bookworm.

It holds what the SDK runs inside the sandbox (``Xvfb``, ``xdpyinfo``, ``xrandr``, ``startxfce4`` over a
D-Bus session, ``x11vnc``, noVNC at ``/opt/noVNC`` with websockify, ``netstat``, ``xdotool``, ``scrot``,
``xdg-open``, ``gtk-launch``) and applications for an agent to drive: Firefox ESR, a terminal, two text
editors and a file manager. Everything ``base`` has is there too (its packages, the user ``user``, envd's
mount point). ``desktop_setup.sh`` lays out the rest; the font and icon caches are built by the packages'
own triggers. The image is cached per ``fingerprint``. The SDK itself starts the X server and the session
after a create, so the template has no start command.
"""

from __future__ import annotations

import hashlib
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from ..runtime.safe_path import Root
from . import base
from .cached import build_once
from .commands import run_logged

TEMPLATE_ID = "desktop"
ALIASES = ["desktop", "desktop-template-000-0000-0000-000000000001"]
PACKAGES = [
    # the X server and what e2b-desktop asks of it
    "xvfb", "x11-utils", "x11-xserver-utils", "xauth", "dbus-x11", "xdotool", "scrot", "xdg-utils", "file",
    "libgtk-3-bin", "desktop-file-utils", "net-tools",
    # the session
    "xfce4-session", "xfwm4", "xfdesktop4", "xfce4-panel", "xfce4-settings", "xfconf",
    "adwaita-icon-theme", "fonts-dejavu-core",
    # the stream
    "x11vnc", "novnc", "python3-websockify",
    # applications
    "firefox-esr", "xfce4-terminal", "mousepad", "gedit", "thunar",
]  # fmt: skip
# Translations, manuals and documentation are left out (about 200 MB); licences stay.
DPKG_OPTIONS = (
    "path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
)  # fmt: skip
_SETUP = Path(__file__).with_name("desktop_setup.sh")


def rootfs_path(cache_dir: Path) -> Path:
    """Where the image this code builds lives: a directory per ``fingerprint``."""
    return Path(cache_dir) / "templates" / TEMPLATE_ID / fingerprint()[:16] / "rootfs"


def fingerprint() -> str:
    """What the image is made of: base's recipe, these packages, this builder (its dpkg options among it)
    and its setup script."""
    digest = hashlib.sha256()
    for part in (base.fingerprint(), *PACKAGES):
        digest.update(part.encode() + b"\0")
    digest.update(Path(__file__).read_bytes() + _SETUP.read_bytes())
    return digest.hexdigest()


def build(cache_dir: Path, *, log: Callable[[str], None] = print, force: bool = False) -> Path:
    """Build the desktop's root filesystem unless a cached one has the same ``fingerprint``."""

    def make(partial: Path) -> None:
        log(f"building the {TEMPLATE_ID} template into {rootfs_path(cache_dir)} (mmdebstrap, about a minute)")
        hooks = [*base.CUSTOMIZE, f'sh {_SETUP} "$1"', *base.CLEANUP]
        command = base.mmdebstrap_command(partial, [*base.PACKAGES, *PACKAGES], hooks, DPKG_OPTIONS)
        run_logged(command, log)
        # D-Bus (so the session, and Firefox) needs a machine id, which mmdebstrap empties at its end.
        machine_id = f"{uuid.uuid4().hex}\n"
        with Root(partial) as tree:
            for path in ("etc/machine-id", "var/lib/dbus/machine-id"):
                tree.write_file(path, machine_id)

    return build_once(rootfs_path(cache_dir), fingerprint(), make, force=force)


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "/var/cache/hutch"), force="--force" in sys.argv))
