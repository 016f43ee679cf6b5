"""Networks made ahead, on the real kernel: the set is kept full, a cold create takes one (and a pooled
start does not), and every spare is removed when the node stops, or at its next start when it did not
stop cleanly, except where a sandbox the node took back holds the address."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from hutch.errors import BackendUnavailable
from hutch.ids import is_id
from hutch.runtime.container import ContainerRuntime
from hutch.runtime.container.network import Networks, SandboxNetwork
from hutch.runtime.container.spare_networks import REFILL_DELAY_S, SpareNetworks
from hutch.runtime.types import SandboxSpec, TemplateImage
from hutch.templates import base
from hutch.templates.envd_zipapp import build

WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
SUBNET = f"10.{90 + WORKER}.0.0/16"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def _exists(netns: str) -> bool:
    return Path(f"/run/netns/{netns}").exists()


async def _ready(spares: SpareNetworks, count: int) -> None:
    async with asyncio.timeout(30):
        while len(spares.ready) < count:
            await asyncio.sleep(0.01)


async def test_the_set_is_kept_full_and_removed_on_close(tmp_path: Path) -> None:
    networks = Networks(SUBNET)
    spares = SpareNetworks(networks, tmp_path / "spares", 2)
    await spares.start()
    try:
        await _ready(spares, 2)
        made = list(spares.ready)
        assert all(is_id(sandbox_id) and _exists(net.netns) for sandbox_id, net in made)
        records = {record.name for record in (tmp_path / "spares").iterdir()}
        assert records == {sandbox_id for sandbox_id, _ in made}
        modes = {stat.S_IMODE(record.stat().st_mode) for record in (tmp_path / "spares").iterdir()}
        assert (stat.S_IMODE((tmp_path / "spares").stat().st_mode), modes) == (0o700, {0o600})  # root's alone
        assert spares.take() == made[0]
        taken_id, taken = made[0]
        spares.handed_over(taken_id)
        assert not (tmp_path / "spares" / taken_id).exists()
        spares.fill()
        await _ready(spares, 2)
        assert taken_id not in {sandbox_id for sandbox_id, _ in spares.ready}
    finally:
        await spares.close()
    assert not any(_exists(net.netns) for _, net in made[1:])
    assert _exists(taken.netns)
    assert list((tmp_path / "spares").iterdir()) == []
    assert networks.used == {taken.index}  # the taken one is its sandbox's to remove
    await networks.delete(taken)
    spares.fill()  # a start that ends after the close makes none
    await asyncio.sleep(3 * REFILL_DELAY_S)
    assert not spares.ready


async def test_what_an_earlier_run_left_is_removed_at_start(tmp_path: Path) -> None:
    directory = tmp_path / "spares"
    earlier = SpareNetworks(Networks(SUBNET), directory, 2)
    await earlier.start()
    await _ready(earlier, 2)
    left = [net for _, net in earlier.ready]  # the node died here: nothing was removed
    (directory / "not-an-id").write_text("7")
    (directory / ("a" * 20)).write_text("not a number")

    networks = Networks(SUBNET)
    adopted = left[1]
    networks.used.add(adopted.index)  # a sandbox taken back holds this address
    later = SpareNetworks(networks, directory, 1)
    await later.start()
    try:
        assert not _exists(left[0].netns)
        assert _exists(adopted.netns)
        await _ready(later, 1)
        assert {record.name for record in directory.iterdir()} == {later.ready[0][0]}
    finally:
        await later.close()
        await networks.delete(adopted)
    assert list(directory.iterdir()) == []


async def test_a_spare_that_cannot_be_made_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    networks = Networks(SUBNET)
    refused: list[str] = []

    async def refuse(net: SandboxNetwork) -> None:
        refused.append(net.netns)
        raise BackendUnavailable("ip netns add refused")

    monkeypatch.setattr(networks, "create", refuse)
    spares = SpareNetworks(networks, tmp_path / "spares", 2)
    await spares.start()
    async with asyncio.timeout(10):
        while not refused or networks.used or list((tmp_path / "spares").iterdir()):
            await asyncio.sleep(0.01)
    assert refused == [refused[0]]  # it gave up until the next take
    assert not spares.ready and spares.take() is None
    await spares.close()


async def test_no_address_left_makes_no_spare(tmp_path: Path, caplog) -> None:
    spares = SpareNetworks(Networks("10.255.255.252/31"), tmp_path / "spares", 2)  # room for no sandbox
    await spares.start()
    async with asyncio.timeout(10):
        while "no free sandbox address" not in caplog.text:
            await asyncio.sleep(0.01)
    assert not spares.ready
    assert list((tmp_path / "spares").iterdir()) == []
    await spares.close()


async def test_a_cold_create_takes_a_spare_and_a_pooled_start_does_not(tmp_path: Path) -> None:
    rootfs = base.build(Path("/var/cache/hutch"))
    rt = ContainerRuntime(
        data_dir=tmp_path / "data",
        cache_dir=Path("/var/cache/hutch"),
        envd_path=build(tmp_path / "envd.pyz"),
        subnet=SUBNET,
        spare_networks=1,
    )
    await rt.start()
    try:
        await _ready(rt.host.spares, 1)
        spare_id, spare = rt.host.spares.ready[0]
        handle = await rt.create(SandboxSpec(template=TemplateImage("base", rootfs)))
        assert handle.sandbox_id == spare_id
        await _ready(rt.host.spares, 1)  # made again once the create was over
        next_id = rt.host.spares.ready[0][0]
        assert next_id != spare_id

        rt.keep_warm(TemplateImage("base", rootfs), 1, cpu_count=1, memory_mb=512)
        async with asyncio.timeout(120):
            while rt.pool.size(("base", 1, 512, 1024, "crun")) < 1:
                await asyncio.sleep(0.05)
        assert [sandbox_id for sandbox_id, _ in rt.host.spares.ready] == [next_id]  # the pool made its own
        await rt.kill(handle.sandbox_id)
    finally:
        await rt.close()
    assert not _exists(spare.netns)
    assert list((tmp_path / "data" / "spare-networks").iterdir()) == []
    assert rt.host.networks.used == set()
