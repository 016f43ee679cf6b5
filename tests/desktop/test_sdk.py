"""``e2b-desktop`` 2.7.2, unmodified, against the ``desktop`` template: every public method, with what the X
server received checked by ``xev`` in the sandbox (``events.py``)."""

from __future__ import annotations

import io
import time

import pytest
from e2b import CommandExitException
from e2b_desktop import Sandbox
from PIL import Image

from tests.desktop.events import EventWindow, buttons, events, keys
from tests.stack import Stack


def _windows(desktop: Sandbox, application: str, timeout_s: float = 30) -> list[str]:
    """The visible windows of ``application`` once there is one."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return desktop.get_application_windows(application)
        except CommandExitException:  # xdotool found none
            if time.monotonic() > deadline:
                return []
        time.sleep(0.25)


def test_create_takes_the_resolution_dpi_and_display(desktop_stack: Stack, opts: dict[str, str]):
    created = Sandbox.create(resolution=(1280, 720), dpi=120, display=":1", **opts)
    desktop_stack.seen.add(created.sandbox_id)
    try:
        assert created.get_screen_size() == (1280, 720)
        assert created.commands.run("echo $DISPLAY").stdout.strip() == ":1"
        assert "120x120 dots per inch" in created.commands.run("xdpyinfo -display :1").stdout
        assert Image.open(io.BytesIO(created.screenshot())).size == (1280, 720)
        for process in ("xfce4-session", "xfwm4", "xfdesktop"):
            created.commands.run(f"pgrep -x {process}")
    finally:
        created.kill()


def test_screenshot_as_bytes_and_as_a_stream(desktop: Sandbox):
    shot = desktop.screenshot()
    assert bytes(shot[:8]) == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(shot)).size == (1024, 768)
    streamed = b"".join(desktop.screenshot(format="stream"))
    assert Image.open(io.BytesIO(streamed)).size == (1024, 768)
    assert desktop.commands.run("ls /tmp").stdout.count("screenshot-") == 0  # the SDK removes its files


def test_the_mouse_moves_clicks_scrolls_and_drags(desktop: Sandbox):
    window = EventWindow.open(desktop, "hutch-mouse")
    desktop.move_mouse(123, 456)
    assert desktop.get_cursor_position() == (123, 456)
    desktop.left_click(window.x, window.y)
    desktop.double_click()
    desktop.right_click(window.x + 10, window.y + 10)
    desktop.middle_click()
    desktop.scroll("up", 3)
    desktop.scroll("down", 2)
    desktop.drag((window.x - 50, window.y - 20), (window.x + 60, window.y + 30))
    pressed = [(x, y, button) for kind, x, y, button in buttons(events(desktop, 24)) if kind == "ButtonPress"]
    released = [
        (x, y, button) for kind, x, y, button in buttons(events(desktop, 24)) if kind == "ButtonRelease"
    ]
    assert pressed == [
        (window.x, window.y, 1),
        (window.x, window.y, 1),
        (window.x, window.y, 1),
        (window.x + 10, window.y + 10, 3),
        (window.x + 10, window.y + 10, 2),
        *[(window.x + 10, window.y + 10, 4)] * 3,
        *[(window.x + 10, window.y + 10, 5)] * 2,
        (window.x - 50, window.y - 20, 1),
    ]
    assert released[-1] == (window.x + 60, window.y + 30, 1)
    assert desktop.get_cursor_position() == (window.x + 60, window.y + 30)


def test_the_keyboard_writes_and_presses(desktop: Sandbox):
    EventWindow.open(desktop, "hutch-keys")
    desktop.write("Hi 2!", chunk_size=2, delay_in_ms=5)
    desktop.press("enter")
    desktop.press(["ctrl", "shift", "a"])
    desktop.press("F5")
    pressed = [key for key in keys(events(desktop, 12)) if key not in ("Shift_L", "Shift_R")]
    # Shift is held with the a: xev names the key A.
    assert pressed == ["H", "i", "space", "2", "exclam", "Return", "Control_L", "A", "F5"]


def test_open_launch_and_the_window_methods(desktop: Sandbox):
    desktop.files.write("/home/user/notes.txt", "written by the test\n")
    desktop.open("/home/user/notes.txt")
    editor = _windows(desktop, "mousepad")
    assert editor, "xdg-open did not open the text file in the editor"
    assert "notes.txt" in desktop.get_window_title(editor[0])
    desktop.commands.run(f"xdotool windowactivate --sync {editor[0]}")
    assert desktop.get_current_window_id() == editor[0]
    for application, window_class in (
        ("xfce4-terminal", "xfce4-terminal"),
        ("gedit", "gedit"),
        ("thunar", "thunar"),
        ("firefox", "firefox"),
    ):
        desktop.launch(application)
        assert _windows(desktop, window_class, 60), f"launch({application!r}) showed no window"
    desktop.launch("mousepad", "/home/user/notes.txt")
    assert len(_windows(desktop, "mousepad")) >= 1


def test_open_right_after_a_create_uses_the_desktops_editor(desktop_stack: Stack, opts: dict[str, str]):
    """``open`` as soon as the create returns, before the session has marked the root window as Xfce's:
    the text file opens in the editor, never in a terminal's pager (each of a few fresh desktops)."""
    for _ in range(3):
        created = Sandbox.create(**opts)
        desktop_stack.seen.add(created.sandbox_id)
        try:
            created.files.write("/home/user/notes.txt", "written by the test\n")
            created.open("/home/user/notes.txt")
            assert _windows(created, "mousepad"), "xdg-open did not open the text file in the editor"
            assert created.commands.run("pgrep -a -x less || true").stdout == ""
            assert created.commands.run("echo $XDG_CURRENT_DESKTOP").stdout == "XFCE\n"
        finally:
            created.kill()


def test_wait_waits(desktop: Sandbox):
    started = time.monotonic()
    desktop.wait(400)
    assert time.monotonic() - started >= 0.4


def test_the_stream_starts_and_stops_without_auth(desktop: Sandbox):
    desktop.stream.start()
    try:
        url = desktop.stream.get_url()
        assert url.startswith(f"https://{desktop.get_host(6080)}/vnc.html?")
        assert "password=" not in url
        with pytest.raises(RuntimeError, match="auth key"):
            desktop.stream.get_auth_key()
        with pytest.raises(RuntimeError, match="already running"):
            desktop.stream.start()
        assert desktop.commands.run("netstat -tuln | grep ':5900 '").stdout
    finally:
        desktop.stream.stop()
    assert desktop.commands.run("pgrep -x x11vnc || true").stdout.strip() == ""


def test_the_stream_with_auth_has_a_key(desktop: Sandbox):
    desktop.stream.start(require_auth=True)
    try:
        key = desktop.stream.get_auth_key()
        assert len(key) == 16
        assert f"password={key}" in desktop.stream.get_url(auth_key=key)
        assert desktop.commands.run("test -s /home/user/.vnc/passwd").exit_code == 0
    finally:
        desktop.stream.stop()
