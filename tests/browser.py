"""Debian's Chromium, headless, for the tests that need a real browser: it trusts the tests' certificate
authority through an NSS database of its own (``trusting_home``), and ``Browser`` drives it over the DevTools
protocol (open a page, evaluate JavaScript, move the mouse, take a screenshot)."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests import edge_ca


def chromium() -> str:
    """Chromium's path; scripts/install-deps.sh installs it (``make test`` runs it first)."""
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is missing: scripts/install-deps.sh installs it")
    return found


def trusting_home(base: Path) -> Path:
    """A HOME under ``base`` whose NSS database (what Chromium trusts) holds the tests' authority."""
    certutil = shutil.which("certutil")
    if certutil is None:
        pytest.fail("certutil is missing: scripts/install-deps.sh installs libnss3-tools")
    home = base / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    database = f"sql:{nssdb}"
    subprocess.run([certutil, "-d", database, "-N", "--empty-password"], check=True, timeout=30)
    trust = [certutil, "-d", database, "-A", "-t", "C,,", "-n", "hutch-test", "-i", str(edge_ca.ca_path())]
    subprocess.run(trust, check=True, timeout=30)
    return home


class Page:
    """One tab, over its DevTools WebSocket; events are read and dropped."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict:
        number = next(self._ids)
        self._connection.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self._connection.recv(timeout=60))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 30) -> Any:
        """Evaluate ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while (value := self.evaluate(expression)) is None or value is False:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} stayed false for {timeout_s} s")
            time.sleep(0.1)
        return value

    def move_mouse(self, x: int, y: int) -> None:
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def screenshot(self) -> bytes:
        """The viewport as PNG."""
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])


class Browser:
    """Headless Chromium with a profile and a trusting HOME under ``base``; closed (killed) on exit."""

    def __init__(self, base: Path) -> None:
        self._profile = base / "profile"
        home = trusting_home(base)
        command = [
            chromium(),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            f"--user-data-dir={self._profile}",
            "about:blank",
        ]
        self._process = subprocess.Popen(
            command,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._connections = ExitStack()
        self._endpoint = self._wait_for_endpoint()

    def _wait_for_endpoint(self) -> str:
        """Chromium writes its DevTools port to ``DevToolsActivePort`` in the profile once it listens."""
        active = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not active.exists() or not active.read_text().strip():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        return f"http://127.0.0.1:{active.read_text().split()[0]}"

    def open(self, url: str, width: int, height: int) -> Page:
        """A new tab of ``width`` by ``height`` CSS pixels (one device pixel each) at ``url``."""
        target = httpx.put(f"{self._endpoint}/json/new?about:blank", timeout=10).json()
        connection = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        page = Page(self._connections.enter_context(connection))
        page.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        page.call("Page.navigate", url=url)
        return page

    def close(self) -> None:
        self._connections.close()
        self._process.kill()
        self._process.wait(10)

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
