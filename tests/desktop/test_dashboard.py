"""A desktop sandbox's stream embedded in the dashboard: the stream ``e2b-desktop`` starts shows on the
sandbox's page, noVNC in the frame connected through the TLS edge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2b_desktop import Sandbox
from playwright.sync_api import Page, expect

from tests.desktop.events import drawn
from tests.playwright_chromium import chromium_apart, keep
from tests.stack import WORKER, Stack

HOST_IP, INSIDE_IP = f"10.241.{150 + WORKER}.1", f"10.241.{150 + WORKER}.2"  # the browser's namespace


@pytest.fixture()
def page(desktop_stack: Stack, tmp_path: Path) -> Iterator[Page]:
    port = int(str(desktop_stack.domain).rpartition(":")[2])
    with chromium_apart(tmp_path, port, host_ip=HOST_IP, inside_ip=INSIDE_IP) as apart:
        opened = apart.browser.new_page(viewport={"width": 1400, "height": 1000})
        opened.set_default_timeout(30_000)
        yield opened


def test_the_dashboard_shows_the_stream(desktop_stack: Stack, desktop: Sandbox, page: Page):
    desktop.commands.run(drawn(), timeout=70)
    desktop.stream.start()
    try:
        page.goto(f"https://api.{desktop_stack.domain}/dashboard")
        page.fill("#api-key", desktop_stack.api_key)
        page.click("button[type=submit]")
        page.goto(f"https://api.{desktop_stack.domain}/dashboard#/sandboxes/{desktop.sandbox_id}")
        page.get_by_role("tab", name="desktop").click()
        stream = page.frame_locator("[data-testid=desktop-stream]")
        expect(stream.locator("html.noVNC_connected")).to_have_count(1)
        expect(stream.locator("canvas").first).to_be_visible()
        keep(page, "sandbox-desktop")
    finally:
        desktop.stream.stop()
