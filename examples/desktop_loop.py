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
from pathlib import Path

from e2b import CommandExitException
from e2b_desktop import Sandbox

from hutch.dotenv import find_env_file, read_env_file

NOTE = "/home/user/notes.txt"
PARAGRAPH = "A desktop driven by code: the editor opened, this paragraph typed, saved with Ctrl+S."


def load_settings() -> None:
    """The client settings of the nearest ``.env.local``, unless the environment has them already."""
    found = find_env_file(Path.cwd())
    for name, value in (read_env_file(found) if found else {}).items():
        os.environ.setdefault(name, value)


def wait_for_window(desktop: Sandbox, application: str, timeout_s: float = 30) -> str:
    """The first visible window of ``application``, once there is one."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return desktop.get_application_windows(application)[0]
        except CommandExitException:  # none yet
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {application} window within {timeout_s} s") from None
            time.sleep(0.3)


def main() -> None:
    load_settings()
    desktop = Sandbox.create()
    try:
        print(f"sandbox: {desktop.sandbox_id}")
        print(f"screen: {desktop.get_screen_size()}")

        desktop.files.write(NOTE, "")
        desktop.open(NOTE)  # the editor, as xdg-open picks it
        window = wait_for_window(desktop, "mousepad")
        print(f"editor: {desktop.get_window_title(window)}")

        desktop.write(PARAGRAPH, delay_in_ms=20)
        desktop.press(["ctrl", "s"])
        desktop.wait(500)

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
