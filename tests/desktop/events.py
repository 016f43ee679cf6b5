"""What the X server delivers to a window, as the desktop tests check input with: ``xev`` in the sandbox,
its window found by name, its events parsed from its log."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from e2b import Sandbox

LOG = "/tmp/xev.log"
_BUTTON = re.compile(r"^(ButtonPress|ButtonRelease) event.*?root:\((\d+),(\d+)\).*?button (\d+),", re.S)
_KEY = re.compile(r"^KeyPress event.*?keysym 0x[0-9a-f]+, (\w+)\)", re.S)


def find_window(search: str, timeout_s: int = 30) -> str:
    """A command that prints the first visible window ``xdotool search`` finds with ``search``, once there
    is one. It searches again on errors: ``xdotool search`` fails when a window goes away while it looks
    (Xfce's start makes and drops windows)."""
    return (
        f"for _ in $(seq {timeout_s * 10}); do "
        f"found=$(xdotool search --onlyvisible {search} 2>/dev/null | head -n 1); "
        '[ -n "$found" ] && echo "$found" && exit 0; sleep 0.1; done; exit 1'
    )


def drawn() -> str:
    """A command that ends once Xfce's desktop and panel are mapped (what a screenshot then shows)."""
    return f"{find_window('--class xfdesktop')} >/dev/null && {find_window('--class xfce4-panel')} >/dev/null"


@dataclass(frozen=True)
class EventWindow:
    """An ``xev`` window on the desktop: its id and its centre, in screen coordinates."""

    window_id: str
    x: int
    y: int

    @classmethod
    def open(cls, sandbox: Sandbox, name: str = "hutch-events") -> EventWindow:
        sandbox.commands.run(f"rm -f {LOG}")
        sandbox.commands.run(
            f"stdbuf -oL xev -name {name} -geometry 400x300+200+150 -event button -event keyboard > {LOG}",
            background=True,
        )
        window_id = sandbox.commands.run(find_window(f"--name '^{name}$'")).stdout.split()[0]
        geometry = sandbox.commands.run(f"xdotool getwindowgeometry --shell {window_id}").stdout
        values = dict(line.split("=", 1) for line in geometry.split())
        x = int(values["X"]) + int(values["WIDTH"]) // 2
        y = int(values["Y"]) + int(values["HEIGHT"]) // 2
        sandbox.commands.run(f"xdotool windowactivate --sync {window_id}")
        return cls(window_id, x, y)


def events(sandbox: Sandbox, wanted: int, timeout_s: float = 10) -> list[str]:
    """The log's event blocks once it holds at least ``wanted`` button or key events."""
    deadline = time.monotonic() + timeout_s
    while True:
        blocks = sandbox.files.read(LOG).split("\n\n")
        parsed = [
            block.strip() for block in blocks if _BUTTON.match(block.strip()) or _KEY.match(block.strip())
        ]
        if len(parsed) >= wanted or time.monotonic() > deadline:
            return parsed
        time.sleep(0.1)


def buttons(blocks: list[str]) -> list[tuple[str, int, int, int]]:
    """(``ButtonPress``/``ButtonRelease``, root x, root y, button) of each button event."""
    found = [_BUTTON.match(block) for block in blocks]
    return [(m[1], int(m[2]), int(m[3]), int(m[4])) for m in found if m]


def keys(blocks: list[str]) -> list[str]:
    """The keysym name of each key press."""
    found = [_KEY.match(block) for block in blocks]
    return [m[1] for m in found if m]
