"""Layers between nodes: a node that lacks a template's layer copies it from one that holds it, exactly
(owners, modes, symlinks as links, overlay whiteouts and opaque directories), and a node hands out only
directories that a template names inside its cache. The holder runs in a mount namespace of its own whose
template cache is another directory, as on another machine."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from hutch.catalog import Catalog, register_template
from hutch.catalog.repos import nodes, templates
from hutch.errors import NodeUnavailable
from hutch.node.archives import ArchiveFetcher
from hutch.node.layers import CacheCollector, LayerCopier
from hutch.templates import garbage
from tests.catalog.test_nodes import node
from tests.conftest import free_port

KEY = "l" * 40


@dataclass
class Holder:
    url: str
    cache: Path
    layer: Path
    address: str
    data: Path


def _make_layer(path: Path) -> None:
    """A layer as a build commits it: files of a mapped user, a link out of the tree, a whiteout, an
    opaque directory."""
    (path / "home/user").mkdir(parents=True)
    (path / "home/user/made.txt").write_text("made on the holder\n")
    os.chown(path / "home/user/made.txt", 101000, 101000)
    (path / "home/user/made.txt").chmod(0o640)
    (path / "home/user/passwd").symlink_to("/etc/passwd")
    os.mknod(path / "home/user/removed", 0o600 | 0o020000, os.makedev(0, 0))  # an overlay whiteout
    (path / "opt/replaced").mkdir(parents=True)
    os.setxattr(path / "opt/replaced", "trusted.overlay.opaque", b"y")


async def _register(url: str, rootfs: str) -> None:
    catalog = await Catalog.open(url)
    try:
        await register_template(catalog, template_id="tpl-copied", rootfs=rootfs)
        async with catalog.transaction() as session:
            await nodes.register(session, node("holder"))
    finally:
        await catalog.close()


@pytest.fixture()
def holder(tmp_path: Path) -> Iterator[Holder]:
    if os.geteuid() != 0:
        pytest.skip("copying layers keeps owners and overlay attributes: root only")
    cache, own = tmp_path / "cache", tmp_path / "holder-cache"
    layer = cache / "layers" / "data" / "0123abcd"
    cache.mkdir()
    _make_layer(own / "layers" / "data" / "0123abcd")
    url = f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}"
    asyncio.run(_register(url, f"{layer}:/etc"))
    port = free_port()
    server = Path(__file__).with_name("serve_layers.py")
    process = subprocess.Popen(
        ["unshare", "--mount", sys.executable, str(server), url, str(cache), str(own), str(port), KEY],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    address = f"127.0.0.1:{port}"
    asyncio.run(_point(url, address))
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://{address}/", timeout=1)
            break
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline, "the holder did not start"
            time.sleep(0.1)
    try:
        (tmp_path / "data").mkdir()
        yield Holder(url, cache, layer, address, tmp_path / "data")
    finally:
        process.terminate()
        process.wait(10)


async def _point(url: str, address: str) -> None:
    catalog = await Catalog.open(url)
    try:
        async with catalog.transaction() as session:
            found = await nodes.get_or_raise(session, "holder")
            found.api_address, found.heartbeat_at = address, datetime.now(UTC)
    finally:
        await catalog.close()


async def _ensure(holder: Holder, rootfs: str) -> list[str]:
    catalog = await Catalog.open(holder.url)
    fetcher = ArchiveFetcher(KEY)
    copier = LayerCopier(
        catalog, node_id="here", cache_dir=holder.cache, data_dir=holder.data, fetcher=fetcher
    )
    try:
        return await copier.ensure(rootfs, "tpl-copied")
    finally:
        await fetcher.close()
        await catalog.close()


def test_a_missing_layer_is_copied_exactly(holder: Holder) -> None:
    assert not holder.layer.exists()
    copied = asyncio.run(_ensure(holder, f"{holder.layer}:/etc"))
    assert copied == [str(holder.layer)]
    made = holder.layer / "home/user/made.txt"
    assert made.read_text() == "made on the holder\n"
    info = made.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (101000, 101000, 0o640)
    link = holder.layer / "home/user/passwd"
    assert link.is_symlink() and os.readlink(link) == "/etc/passwd"
    whiteout = (holder.layer / "home/user/removed").lstat()
    assert whiteout.st_rdev == os.makedev(0, 0) and (whiteout.st_mode & 0o170000) == 0o020000
    assert os.getxattr(holder.layer / "opt/replaced", "trusted.overlay.opaque") == b"y"
    assert not list(holder.layer.parent.glob(".copy-*"))  # unpacked beside it, then renamed in
    assert asyncio.run(_ensure(holder, str(holder.layer))) == []  # there now: nothing to copy


def test_a_node_hands_out_only_layers_that_templates_name_in_its_cache(holder: Holder) -> None:
    headers = {"X-Hutch-Cluster-Key": KEY}
    url = f"http://{holder.address}/node/v1/layers"
    assert httpx.get(url, params={"path": str(holder.layer)}, headers=headers).status_code == 200
    for path in (
        "/etc",
        "/etc/",
        f"{holder.layer}/../../..",
        str(holder.cache),
        "relative",
        str(holder.layer) + "x",
    ):
        answer = httpx.get(url, params={"path": path}, headers=headers)
        assert answer.status_code == 404, (path, answer.text)
    assert httpx.get(url, params={"path": str(holder.layer)}).status_code == 401


def test_a_layer_no_node_has_is_a_clear_error(holder: Holder) -> None:
    missing = holder.cache / "layers" / "data" / "nowhere"
    with pytest.raises(NodeUnavailable, match="no node could give this node the layer"):
        asyncio.run(_ensure(holder, str(missing)))
    assert not missing.exists()


async def _collect(holder: Holder, *, spared_s: float, forget: bool = False) -> garbage.Collected:
    catalog = await Catalog.open(holder.url)
    try:
        if forget:
            async with catalog.transaction() as session:
                await templates.remove(session, await templates.get(session, "tpl-copied"))
        collector = CacheCollector(catalog, cache_dir=holder.cache, data_dir=holder.data, spared_s=spared_s)
        return await collector.collect()
    finally:
        await catalog.close()


def test_a_copied_layer_is_collected_once_no_template_names_it(holder: Holder) -> None:
    asyncio.run(_ensure(holder, str(holder.layer)))
    assert asyncio.run(_collect(holder, spared_s=0)) == garbage.Collected(0, 0)  # the template names it
    assert asyncio.run(_collect(holder, spared_s=600, forget=True)) == garbage.Collected(
        0, 0
    )  # copied lately
    assert holder.layer.is_dir()
    assert asyncio.run(_collect(holder, spared_s=0)) == garbage.Collected(1, 0)
    assert not holder.layer.exists()
