"""The stream in a real browser: the URL ``stream.get_url()`` gives opens in headless Chromium, noVNC in it
connects through Hutch's TLS edge over a WebSocket, and the page shows what ``scrot`` sees in the sandbox;
view-only keeps the browser's mouse off the desktop, a wrong password connects nothing, and a one-window
stream is that window's size."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2b_desktop import Sandbox
from PIL import Image, ImageChops

from tests.browser import Browser, Page
from tests.desktop.events import drawn, find_window
from tests.stack import Stack

CONNECTED = "document.documentElement.classList.contains('noVNC_connected')"
CANVAS_SIZE = "(c => c && c.width > 0 ? [c.width, c.height] : null)(document.querySelector('canvas'))"
# Pixels whose colour differs by more than this (of 255, in any channel) count as different.
TOLERANCE = 8


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Browser]:
    with Browser(tmp_path) as running:
        yield running


@pytest.fixture()
def painted(desktop_stack: Stack, opts: dict[str, str]) -> Iterator[Sandbox]:
    """A desktop of its own for each test (the SDK keeps ``require_auth`` from one ``stream.start`` to the
    next), once Xfce has drawn its panel and desktop."""
    created = Sandbox.create(**opts)
    desktop_stack.seen.add(created.sandbox_id)
    created.commands.run(drawn(), timeout=70)
    yield created
    created.kill()


def _connect(browser: Browser, url: str) -> Page:
    page = browser.open(url, 1024, 768)
    page.wait_for(CONNECTED)
    page.wait_for(CANVAS_SIZE)
    return page


def _difference(first: bytes, second: bytes) -> float:
    """The share of pixels that differ beyond ``TOLERANCE`` between two images of one size."""
    one, other = (Image.open(io.BytesIO(data)).convert("RGB") for data in (first, second))
    assert one.size == other.size
    mask = ImageChops.difference(one, other).convert("L").point(lambda value: 255 if value > TOLERANCE else 0)
    return mask.histogram()[255] / (one.size[0] * one.size[1])


def test_the_browser_shows_the_desktop_scrot_sees(painted: Sandbox, browser: Browser):
    painted.commands.run("xdotool mousemove --sync 1000 700")  # the pointer out of the way
    painted.stream.start(require_auth=True)
    url = painted.stream.get_url(auth_key=painted.stream.get_auth_key())
    page = _connect(browser, url)
    assert page.wait_for(CANVAS_SIZE) == [1024, 768]
    scrot = bytes(painted.screenshot())
    deadline = time.monotonic() + 20
    while (difference := _difference(page.screenshot(), scrot)) > 0.01 and time.monotonic() < deadline:
        time.sleep(0.5)  # noVNC draws the framebuffer's updates as they come
    assert difference <= 0.01, f"{difference:.1%} of the page's pixels differ from scrot's"
    blank = Image.new("RGB", (1024, 768), Image.open(io.BytesIO(scrot)).getpixel((512, 400)))
    buffer = io.BytesIO()
    blank.save(buffer, format="PNG")
    assert _difference(page.screenshot(), buffer.getvalue()) > 0.01, (
        "the desktop is one colour: nothing drawn"
    )


def test_a_wrong_password_connects_nothing(painted: Sandbox, browser: Browser):
    painted.stream.start(require_auth=True)
    page = browser.open(painted.stream.get_url(auth_key="not-the-key"), 1024, 768)
    page.wait_for("document.getElementById('noVNC_status').textContent.length > 0")
    time.sleep(2)
    assert page.evaluate(CONNECTED) is False


@pytest.mark.parametrize("view_only", [False, True])
def test_view_only_keeps_the_browsers_mouse_off_the_desktop(
    painted: Sandbox, browser: Browser, view_only: bool
):
    painted.commands.run("xdotool mousemove --sync 10 10")
    painted.stream.start()
    page = _connect(browser, painted.stream.get_url(view_only=view_only))
    for step in range(5):
        page.move_mouse(300 + step * 20, 400)
    deadline = time.monotonic() + 5
    while painted.get_cursor_position() != (380, 400) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (painted.get_cursor_position() == (10, 10)) is view_only


def test_a_one_window_stream_is_that_windows_size(painted: Sandbox, browser: Browser):
    painted.launch("xfce4-terminal")
    window = painted.commands.run(find_window("--class xfce4-terminal"), timeout=40).stdout.split()[0]
    geometry = dict(
        line.split("=", 1)
        for line in painted.commands.run(f"xdotool getwindowgeometry --shell {window}").stdout.split()
    )
    painted.stream.start(window_id=window)
    page = _connect(browser, painted.stream.get_url(resize="off"))
    assert page.wait_for(CANVAS_SIZE) == [int(geometry["WIDTH"]), int(geometry["HEIGHT"])]
