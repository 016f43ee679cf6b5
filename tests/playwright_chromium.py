"""Playwright driving Debian's Chromium in a network namespace of its own, as a browser on another machine.

On the host itself every sandbox start adds addresses, which Chromium takes for a change of network,
failing the requests it has in flight (``ERR_NETWORK_CHANGED``). Apart, it reaches the TLS edge (on
loopback) through a relay on the host's end of its veth, with ``*.hutch.localhost`` mapped there, and
trusts the tests' certificate authority (:func:`tests.browser.trusting_home`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser import chromium, trusting_home
from tests.netns import joined_namespace
from tests.relay import Relay, relay

# As root, on a machine without a network: no sandbox of Chromium's own, and none of its own traffic.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Screenshots the tests keep (``make test`` leaves them here; CI may collect them).
ARTIFACTS = (
    Path(os.environ.get("HUTCH_TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts")) / "dashboard"
)


def keep(page: Page, name: str) -> None:
    """A screenshot of the whole page as a test artifact, ``<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


@dataclass(frozen=True)
class Chromium:
    browser: Browser
    network: Relay  # its way to the edge: ``network.cut()`` breaks its connections


@contextlib.contextmanager
def chromium_apart(base: Path, edge_port: int, *, host_ip: str, inside_ip: str) -> Iterator[Chromium]:
    """Chromium (files under ``base``) in a namespace whose veth has ``host_ip`` (/30) on the host's end,
    reaching the edge on ``127.0.0.1:edge_port``."""
    home = trusting_home(base)
    wrapper = base / "chromium"
    with (
        joined_namespace("browser", host_ip, inside_ip, 30) as joined,
        relay((host_ip, edge_port), ("127.0.0.1", edge_port)) as relaying,
    ):
        # Without IPv6 no link-local address appears a moment after the link is up, while a page loads.
        no_ipv6 = ["ip", "netns", "exec", joined.netns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]
        subprocess.run(no_ipv6, check=True)
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {joined.netns} {chromium()} "$@"\n')
        wrapper.chmod(0o700)
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=wrapper,
                args=[*FLAGS, f"--host-resolver-rules=MAP *.hutch.localhost {host_ip}"],
                env={"PATH": os.environ["PATH"], "HOME": str(home)},
            )
            try:
                yield Chromium(launched, relaying)
            finally:
                launched.close()
