"""A computer-use loop without a model, on a Hutch desktop sandbox through E2B's own ``e2b_desktop`` SDK.

Each step is what a model would decide from the screenshot before it: open a text file in the editor, type a
paragraph, save it with Ctrl+S, take a screenshot, then read the file back with ``files.read``. The stream
URL printed at the end opens the live desktop in a browser (with ``E2B_DOMAIN``, as ``make up`` sets it).

Start Hutch first (``make up`` or ``hutch up``); it writes ``.env.local`` with the client settings.
Run this from that directory or one below it::

    python examples/desktop_loop.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from e2b import CommandExitException
from e2b_desktop import Sandbox

from hutch.dotenv import find_env_file, read_env_file

T = TypeVar("T")
NOTE = "/home/user/notes.txt"
PARAGRAPH = "A desktop driven by code: the editor opened, this paragraph typed, saved with Ctrl+S."


def load_settings() -> None:
    """The client settings of the nearest ``.env.local``, unless the environment has them already."""
    found = find_env_file(Path.cwd())
    for name, value in (read_env_file(found) if found else {}).items():
        os.environ.setdefault(name, value)


def wait_until(check: Callable[[], T | None], what: str, timeout_s: float = 30) -> T:
    """What ``check`` returns once it is something: an agent looks again until the screen shows it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = check()
        except CommandExitException:  # xdotool found nothing (yet)
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s} s")
        time.sleep(0.3)


def window_centre(desktop: Sandbox, window: str) -> tuple[int, int]:
    shell = desktop.commands.run(f"xdotool getwindowgeometry --shell {window}").stdout
    geometry = dict(line.split("=", 1) for line in shell.split())
    return int(geometry["X"]) + int(geometry["WIDTH"]) // 2, int(geometry["Y"]) + int(geometry["HEIGHT"]) // 2


def main() -> None:
    load_settings()
    desktop = Sandbox.create()
    try:
        print(f"sandbox: {desktop.sandbox_id}")
        print(f"screen: {desktop.get_screen_size()}")

        desktop.files.write(NOTE, "")
        desktop.open(NOTE)  # in the desktop's editor
        window = wait_until(lambda: desktop.get_application_windows("mousepad")[0], "the editor's window")
        print(f"editor: {desktop.get_window_title(window)}")
        # Click into the editor, where a model would point from the screenshot (the script asks X instead).
        desktop.left_click(*window_centre(desktop, window))
        wait_until(
            lambda: desktop.get_current_window_id() in desktop.get_application_windows("mousepad"),
            "the editor has the keyboard",
        )

        desktop.write(PARAGRAPH, delay_in_ms=20)
        desktop.press(["ctrl", "s"])
        wait_until(lambda: "*" not in desktop.get_window_title(window), "the file saved")

        Path("desktop_loop.png").write_bytes(desktop.screenshot())
        print("screenshot: desktop_loop.png")
        print(f"file: {desktop.files.read(NOTE).strip()}")

        desktop.stream.start(require_auth=True)
        print(f"stream: {desktop.stream.get_url(auth_key=desktop.stream.get_auth_key())}")
    finally:
        desktop.kill()
    print("killed")


if __name__ == "__main__":
    main()
