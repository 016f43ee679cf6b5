"""What a node left behind: the check behind Hutch's "nothing leaks" promise, used by the tests and the
chaos benchmark. After a node stopped, every list it returns should be empty."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path


def leftovers(data_dir: Path, subnet: str, sandbox_ids: Iterable[str] = ()) -> list[str]:
    """Problems found for the node with ``data_dir`` and ``subnet``, given the ids of its sandboxes."""
    ids = set(sandbox_ids)
    problems = []
    sandboxes = data_dir / "sandboxes"
    if sandboxes.exists() and any(sandboxes.iterdir()):
        problems.append(f"sandbox directories: {sorted(p.name for p in sandboxes.iterdir())}")
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(data_dir) in line]
    if mounts:
        problems.append(f"mounts: {mounts}")
    netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    leaked_ns = sorted(n for n in netns if n.removeprefix("hutch-") in ids)
    if leaked_ns:
        problems.append(f"network namespaces: {leaked_ns}")
    network = ipaddress.ip_network(subnet)
    links = subprocess.run(["ip", "-j", "address"], capture_output=True, text=True).stdout
    leaked_links = [
        link["ifname"]
        for link in json.loads(links or "[]")
        for address in link.get("addr_info", [])
        if address.get("family") == "inet" and ipaddress.ip_address(address["local"]) in network
    ]
    if leaked_links:
        problems.append(f"veth interfaces: {leaked_links}")
    routes = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "type", "unreachable"], capture_output=True, text=True
    )
    if any(route.get("dst") == str(network) for route in json.loads(routes.stdout or "[]")):
        problems.append(f"the unreachable route of {network}")
    for controller in ("memory", "pids", "cpu"):
        parent = Path("/sys/fs/cgroup") / controller / "hutch"
        if parent.exists():
            leaked = sorted(p.name for p in parent.iterdir() if p.is_dir() and p.name in ids)
            if leaked:
                problems.append(f"{controller} cgroups: {leaked}")
    loops = subprocess.run(["losetup", "--json", "--list"], capture_output=True, text=True).stdout
    leaked_loops = [
        device["name"]
        for device in json.loads(loops or '{"loopdevices": []}')["loopdevices"]
        if str(data_dir) in (device.get("back-file") or "")
    ]
    if leaked_loops:
        problems.append(f"loop devices (sandbox disks): {leaked_loops}")
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    if any(str(data_dir) in line for line in processes.splitlines()):
        problems.append("processes still refer to the data directory")
    return problems
