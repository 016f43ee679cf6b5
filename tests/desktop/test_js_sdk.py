"""``@e2b/desktop`` 2.4.0 (npm), unmodified, under Node against the ``desktop`` template, given only the
domain and a key: the same calls as the Python SDK's tests, with the X server's events checked by ``xev``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests import edge_ca
from tests.desktop.events import LOG, find_window
from tests.npm_install import install
from tests.stack import Stack

SCRIPT = """
import { Sandbox } from '%(package)s/dist/index.mjs'

const desktop = await Sandbox.create({ resolution: [800, 600] })
try {
  const run = async (command) => (await desktop.commands.run(command)).stdout
  await desktop.commands.run(
    'stdbuf -oL xev -name js-events -geometry 400x300+100+100 -event button -event keyboard > %(log)s',
    { background: true })
  const window = (await run(%(find_window)s)).trim()
  await run(`xdotool windowactivate --sync ${window}`)
  const shell = Object.fromEntries((await run(`xdotool getwindowgeometry --shell ${window}`))
    .trim().split('\\n').map((line) => line.split('=')))
  const x = Number(shell.X) + 200, y = Number(shell.Y) + 150
  await desktop.moveMouse(x, y)
  const cursor = await desktop.getCursorPosition()
  await desktop.leftClick()
  await desktop.doubleClick(x, y)
  await desktop.rightClick()
  await desktop.middleClick()
  await desktop.scroll('down', 2)
  await desktop.drag([x - 40, y], [x + 40, y])
  await desktop.write('Ok!')
  await desktop.press('enter')
  await desktop.press(['ctrl', 'shift', 'z'])
  await desktop.wait(200)
  const screenshot = await desktop.screenshot()
  await desktop.files.write('/home/user/js.txt', 'from node\\n')
  await desktop.open('/home/user/js.txt')
  let editors = []
  for (let i = 0; i < 120 && !editors.filter(Boolean).length; i++) {
    await new Promise((done) => setTimeout(done, 250))
    editors = (await run('xdotool search --onlyvisible --class mousepad || true')).trim().split('\\n')
  }
  await desktop.launch('xfce4-terminal')
  await desktop.stream.start({ requireAuth: true })
  const key = desktop.stream.getAuthKey()
  const url = desktop.stream.getUrl({ authKey: key, viewOnly: true })
  await desktop.stream.stop()
  console.log(JSON.stringify({
    size: await desktop.getScreenSize(),
    cursor,
    png: Buffer.from(screenshot).subarray(0, 8).toString('hex'),
    events: await desktop.files.read('%(log)s'),
    title: editors[0] ? await desktop.getWindowTitle(editors[0]) : '',
    current: await desktop.getCurrentWindowId(),
    terminals: await desktop.getApplicationWindows('xfce4-terminal'),
    host: desktop.getHost(6080),
    key,
    url,
  }))
} finally {
  await desktop.kill()
}
"""


@pytest.fixture(scope="session")
def package() -> tuple[str, str]:
    """Node and the pinned ``@e2b/desktop``'s directory, installed into the cache on first use."""
    return install("install-e2b-desktop-js.sh")


def test_the_js_sdk_drives_the_desktop(desktop_stack: Stack, package: tuple[str, str], tmp_path: Path):
    node, directory = package
    script = tmp_path / "desktop.mjs"
    find = json.dumps(find_window("--name '^js-events$'"))
    script.write_text(SCRIPT % {"package": directory, "log": LOG, "find_window": find})
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "E2B_DOMAIN": str(desktop_stack.domain),
        "E2B_API_KEY": desktop_stack.api_key,
        "NODE_EXTRA_CA_CERTS": str(edge_ca.ca_path()),
    }
    done = subprocess.run([node, str(script)], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["size"] == {"width": 800, "height": 600}
    assert result["png"] == "89504e470d0a1a0a"
    blocks = [
        block for block in result["events"].split("\n\n") if "ButtonPress" in block or "KeyPress" in block
    ]
    pressed_buttons = [
        block.split("button ")[1].split(",")[0] for block in blocks if block.strip().startswith("ButtonPress")
    ]
    assert pressed_buttons == ["1", "1", "1", "3", "2", "5", "5", "1"]
    typed = [
        block.split("keysym ")[1].split(", ")[1].rstrip(")").split(")")[0]
        for block in blocks
        if block.strip().startswith("KeyPress")
    ]
    assert [key for key in typed if not key.startswith("Shift")] == [
        "O",
        "k",
        "exclam",
        "Return",
        "Control_L",
        "Z",
    ]
    assert "js.txt" in result["title"]
    assert result["terminals"] and result["current"]
    assert result["url"].startswith(f"https://{result['host']}/vnc.html?")
    assert "view_only=true" in result["url"] and f"password={result['key']}" in result["url"]
