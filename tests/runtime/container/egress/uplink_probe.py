"""Run inside a test's network namespace: the container runtime made with ``egress_interface`` as given
(argv[1]), and what it wired to the uplink it found, as one line of JSON on stdout.

With an uplink, the firewall is installed (nftables is per namespace, so the host's tables are untouched),
then ``argv[4]`` is added to the uplink: the firewall's ``node`` set must follow the uplink's networks.

``python uplink_probe.py SETTING WORK_DIR SUBNET ADDRESS/PREFIX``
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path

from hutch.runtime.container import ContainerRuntime


def node_set(table: str) -> str:
    return subprocess.run(
        ["nft", "list", "set", "inet", table, "node"], capture_output=True, text=True, check=True
    ).stdout


async def main(setting: str, work: Path, subnet: str, address: str) -> dict:
    runtime = ContainerRuntime(
        data_dir=work, cache_dir=work, envd_path=work / "envd.pyz", subnet=subnet, egress_interface=setting
    )
    host = runtime.host
    found = {
        "firewall": host.firewall.uplink,
        "default_route": host.networks.default_route,
        "egress_proxy": None if host.egress_proxy is None else host.egress_proxy.uplink,
    }
    uplink = host.firewall.uplink
    if uplink is not None:
        await host.firewall.install()
        try:
            found["node_before"] = node_set(host.firewall.table)
            subprocess.run(["ip", "address", "add", address, "dev", uplink], check=True)
            network = str(ipaddress.ip_interface(address).network)
            deadline = time.monotonic() + 10
            while network not in node_set(host.firewall.table) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            found["node_after"] = node_set(host.firewall.table)
        finally:
            await host.firewall.uninstall()
    return found


if __name__ == "__main__":
    setting, work, subnet, address = sys.argv[1:5]
    print(json.dumps(asyncio.run(main(setting, Path(work), subnet, address))))
