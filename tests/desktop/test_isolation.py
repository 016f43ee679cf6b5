"""A desktop's screen, input and stream are its own: another sandbox (another tenant's code) finds none of
its windows on its own display, and reaches neither its VNC server nor its noVNC port over the network."""

from __future__ import annotations

from e2b_desktop import Sandbox

from tests.desktop.events import find_window
from tests.stack import Stack

REACH = "timeout 3 bash -c 'exec 3<>/dev/tcp/{address}/{port}' && echo reached || echo refused"
ADDRESS = "ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1"


def test_another_sandbox_reaches_nothing_of_a_desktop(desktop_stack: Stack, opts: dict[str, str]):
    first = Sandbox.create(**opts)
    second = Sandbox.create(**opts)
    desktop_stack.seen.update({first.sandbox_id, second.sandbox_id})
    try:
        first.commands.run("xmessage -name secret-window 'the first desktop'", background=True)
        first.commands.run(find_window("--name secret-window"), timeout=40)
        first.stream.start()
        address = first.commands.run(ADDRESS).stdout.split()[0]
        for port in (5900, 6080):
            reached_inside = first.commands.run(REACH.format(address="127.0.0.1", port=port)).stdout
            reached_from_another = second.commands.run(REACH.format(address=address, port=port)).stdout
            assert (reached_inside.strip(), reached_from_another.strip()) == ("reached", "refused")
        found = second.commands.run("xdotool search --name secret-window || echo none").stdout.strip()
        assert found == "none"
    finally:
        first.kill()
        second.kill()
