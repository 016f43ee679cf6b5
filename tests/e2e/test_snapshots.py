"""Snapshots and forks through the official SDK against the real stack, on both engines: a snapshot's files
and env vars are in every sandbox created from it, snapshots are listed and deleted as templates, and a
fork gives independent running copies with their own ids and tokens."""

from __future__ import annotations

import secrets
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from e2b import NotFoundException, Sandbox, SandboxException

from bench.memory_server import ask, start_dialer, start_server
from tests.stack import ENGINES, Stack


@pytest.mark.parametrize("engine", ENGINES)
def test_a_snapshot_is_a_template_of_the_sandboxs_files(stack: Stack, engine: str) -> None:
    name = f"snap-{secrets.token_hex(4)}"
    sandbox = stack.create(engine, envs={"FROM_PARENT": "yes"})
    try:
        sandbox.files.write("/home/user/notes.txt", "snapshotted")
        sandbox.commands.run("rm /etc/motd || true; echo root-made > /opt/marker", user="root")
        pid = start_server(sandbox)
        token, count = ask(sandbox)
        info = sandbox.create_snapshot(name=name)
        assert info.names == [name]
        sandbox.files.write("/home/user/notes.txt", "changed after")
        listed = {
            item.snapshot_id
            for item in Sandbox.list_snapshots(sandbox_id=sandbox.sandbox_id, **stack.opts).next_items()
        }
        assert info.snapshot_id in listed
        for template in (info.snapshot_id, name):
            child = Sandbox.create(template, **stack.opts)
            stack.seen.add(child.sandbox_id)
            try:
                assert child.files.read("/home/user/notes.txt") == "snapshotted"
                assert child.files.read("/opt/marker") == "root-made\n"
                assert (
                    child.commands.run("echo $FROM_PARENT; test ! -e /etc/motd && echo gone").stdout
                    == "yes\ngone\n"
                )
                running = {process.pid for process in child.commands.list()}
                if engine == "gvisor":  # its memory and processes too: each child goes on from there
                    assert pid in running
                    assert ask(child) == (token, count + 1)
                else:  # crun keeps the files only: the child booted afresh
                    assert pid not in running
            finally:
                child.kill()
        assert sandbox.files.read("/home/user/notes.txt") == "changed after"
        assert Sandbox.delete_snapshot(info.snapshot_id, **stack.opts) is True
        with pytest.raises(SandboxException, match="not found"):
            Sandbox.create(info.snapshot_id, **stack.opts)
    finally:
        sandbox.kill()


@pytest.mark.parametrize("engine", ENGINES)
def test_fork_makes_independent_copies(stack: Stack, engine: str) -> None:
    sandbox = stack.create(engine)
    try:
        sandbox.files.write("/home/user/notes.txt", "original")
        pid = start_server(sandbox)
        token, count = ask(sandbox)
        forks = sandbox.fork(count=3, **stack.opts)
        assert all(isinstance(fork, Sandbox) for fork in forks), forks
        ids = {fork.sandbox_id for fork in forks}
        stack.seen.update(ids)
        assert len(ids) == 3 and sandbox.sandbox_id not in ids
        assert len({fork._envd_access_token for fork in forks}) == 3
        for index, fork in enumerate(forks):
            assert fork.files.read("/home/user/notes.txt") == "original"
            fork.files.write("/home/user/notes.txt", f"fork {index}")
            running = {process.pid for process in fork.commands.list()}
            if engine == "gvisor":  # memory and processes go on in each copy, each on its own
                assert pid in running
                assert ask(fork) == (token, count + 1)
            else:  # crun copies the files only: each copy booted afresh
                assert pid not in running
        for index, fork in enumerate(forks):
            assert fork.files.read("/home/user/notes.txt") == f"fork {index}"
            assert fork.get_info().metadata.get("hutch.runtime") == engine
        assert sandbox.files.read("/home/user/notes.txt") == "original"
        assert ask(sandbox) == (token, count + 1)
        for fork in forks:  # a copy's envd takes its own token only (a restored one had the parent's)
            assert _read_notes(stack, fork.sandbox_id, sandbox._envd_access_token).status_code == 401
            assert _read_notes(stack, fork.sandbox_id, fork._envd_access_token).status_code == 200
        for fork in forks:
            fork.kill()
    finally:
        sandbox.kill()


def test_a_gvisor_fork_whose_memory_cannot_be_saved_copies_the_files(stack: Stack) -> None:
    sandbox = stack.create("gvisor")
    try:
        sandbox.files.write("/home/user/notes.txt", "original")
        dialer = start_dialer(sandbox)
        (fork,) = sandbox.fork(count=1, **stack.opts)
        stack.seen.add(fork.sandbox_id)
        assert fork.files.read("/home/user/notes.txt") == "original"
        assert dialer not in {process.pid for process in fork.commands.list()}  # booted, as on crun
        assert dialer in {process.pid for process in sandbox.commands.list()}  # the source ran on
        fork.kill()
    finally:
        sandbox.kill()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_snapshot_and_a_pause_at_once_leave_the_sandbox_whole(stack: Stack, engine: str) -> None:
    sandbox = stack.create(engine)
    try:
        start_server(sandbox)
        token, count = ask(sandbox)
        with ThreadPoolExecutor(2) as pool:
            snapshot = pool.submit(sandbox.create_snapshot)
            paused = pool.submit(sandbox.pause)
            assert paused.result() is not False
            try:
                Sandbox.delete_snapshot(snapshot.result().snapshot_id, **stack.opts)
            except SandboxException as err:  # it came after the pause: refused, nothing made
                assert "paused" in str(err)
        resumed = Sandbox.connect(sandbox.sandbox_id, **stack.opts)
        assert ask(resumed) == (token, count + 1)
    finally:
        sandbox.kill()


def _read_notes(stack: Stack, sandbox_id: str, token: str | None) -> httpx.Response:
    headers = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": "49983", "X-Access-Token": token or ""}
    params = {"path": "/home/user/notes.txt", "username": "user"}
    return httpx.get(f"{stack.sandbox_url}/files", params=params, headers=headers, timeout=10)


def test_snapshots_and_forks_of_missing_or_paused_sandboxes_are_refused(stack: Stack) -> None:
    with pytest.raises(NotFoundException):
        Sandbox.fork("nosuchsandbox", count=1, **stack.opts)
    with pytest.raises(SandboxException):
        Sandbox.create_snapshot("nosuchsandbox", **stack.opts)
    sandbox = stack.create()
    try:
        sandbox.pause()
        with pytest.raises(SandboxException, match="paused"):
            Sandbox.create_snapshot(sandbox.sandbox_id, **stack.opts)
    finally:
        sandbox.kill()


def test_a_deleted_snapshot_leaves_no_layer_behind(stack: Stack) -> None:
    sandbox = stack.create("crun")
    try:
        sandbox.files.write("/home/user/notes.txt", "kept until the snapshot goes")
        info = sandbox.create_snapshot()
        with sqlite3.connect(stack.data_dir / "hutch.db") as catalog:
            (rootfs,) = catalog.execute(
                "SELECT rootfs FROM templates WHERE template_id = ?", (info.snapshot_id,)
            ).fetchone()
        layer = Path(rootfs.split(":")[0])
        assert (layer / "home" / "user" / "notes.txt").is_file()
        assert Sandbox.delete_snapshot(info.snapshot_id, **stack.opts) is True
        assert not layer.exists()
        assert sandbox.files.read("/home/user/notes.txt") == "kept until the snapshot goes"
    finally:
        sandbox.kill()
