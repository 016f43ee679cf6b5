"""The template cache's garbage collection: an installation deletes only the layers and images it marked,
once none of its templates, builds or sandboxes (their kept state, or a mounted overlay) uses them and no
other living installation marked them; keys that named deleted layers go with them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from hutch.runtime.linux import detach, mount
from hutch.templates import garbage, layers
from hutch.templates.layers import LayerStore


def _layer(store: LayerStore, key: str) -> Path:
    partial = store.partial()
    partial.mkdir()
    (partial / "file").write_text(key)
    return store.publish(partial, key)


def _image(cache: Path, name: str) -> Path:
    rootfs = cache / "images/oci" / name / "rootfs"
    rootfs.mkdir(parents=True)
    return rootfs


def test_what_nothing_uses_goes_with_its_keys(tmp_path: Path) -> None:
    cache, data = tmp_path / "cache", tmp_path / "data"
    data.mkdir()
    store = LayerStore(cache)
    template, build, sandbox, unused = (_layer(store, key) for key in ("t", "b", "s", "u"))
    image, old_image = _image(cache, "sha256-ab-linux-amd64"), _image(cache, "sha256-cd-linux-amd64")
    unmarked = _layer(store, "snapshot-1")
    for chain in ([template, image], [build, image], [sandbox, image], [unused, old_image]):
        garbage.mark(cache, data, layers.join(chain))
    state = data / "sandboxes/sbx1/sandbox.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"rootfs": layers.join([sandbox, image])}))
    referenced = [layers.join([template, image]), layers.join([build])]

    assert garbage.collect(cache, data, referenced) == garbage.Collected(layers=1, images=1)
    assert not unused.exists() and not old_image.parent.exists()
    assert not (cache / "layers/u").is_symlink(), "the key of a deleted layer goes too"
    assert all(path.is_dir() for path in (template, build, sandbox, image, unmarked))
    assert store.path("t") == template

    state.unlink()
    assert garbage.collect(cache, data, []) == garbage.Collected(layers=3, images=1)
    assert unmarked.is_dir(), "what the installation never marked is not its to delete"


def test_what_another_living_installation_marked_stays(tmp_path: Path) -> None:
    cache, mine, theirs = tmp_path / "cache", tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    shared = _layer(LayerStore(cache), "shared")
    garbage.mark(cache, mine, str(shared))
    garbage.mark(cache, theirs, str(shared))
    assert garbage.collect(cache, mine, []) == garbage.Collected(0, 0) and shared.is_dir()
    # Theirs marks it still; once their data directory is gone, their mark counts no more.
    garbage.mark(cache, mine, str(shared))
    shutil.rmtree(theirs)
    assert garbage.collect(cache, mine, []) == garbage.Collected(1, 0) and not shared.exists()
    assert garbage.collect(tmp_path / "other-cache", mine, []) == garbage.Collected(0, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting an overlay needs root")
def test_a_layer_under_a_mounted_overlay_stays(tmp_path: Path) -> None:
    cache, data = tmp_path / "cache", tmp_path / "data"
    data.mkdir()
    lower = _layer(LayerStore(cache), "mounted")
    garbage.mark(cache, data, str(lower))
    merged = tmp_path / "merged"
    merged.mkdir()
    mount("overlay", str(merged), "overlay", 0, f"ro,lowerdir={lower}:{data}")
    try:
        assert garbage.collect(cache, data, []) == garbage.Collected(0, 0)
        assert (merged / "file").read_text() == "mounted"
    finally:
        detach(str(merged))
    assert garbage.collect(cache, data, []) == garbage.Collected(1, 0)


def test_a_path_that_goes_away_while_it_is_resolved_is_no_layer(tmp_path: Path, monkeypatch) -> None:
    """A mounted overlay may name a layer by ``/proc/<pid>/fd/<n>``: its descriptor can close between the
    link's ``lstat`` and its ``readlink``, which Python's ``resolve`` then raises."""
    real_readlink = os.readlink

    def gone(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_readlink(path, *args, **kwargs)

    read, write = os.pipe()
    try:
        monkeypatch.setattr(os, "readlink", gone)
        assert garbage._marker(tmp_path, Path(f"/proc/self/fd/{read}")) is None
    finally:
        os.close(read)
        os.close(write)
