"""Snapshots and forks through the official SDK against the real stack, on both engines: a snapshot's files
and env vars are in every sandbox created from it, snapshots are listed and deleted as templates, and a
fork gives independent running copies with their own ids and tokens."""

from __future__ import annotations

import secrets

import pytest
from e2b import NotFoundException, Sandbox, SandboxException

from tests.stack import ENGINES, Stack


@pytest.mark.parametrize("engine", ENGINES)
def test_a_snapshot_is_a_template_of_the_sandboxs_files(stack: Stack, engine: str) -> None:
    name = f"snap-{secrets.token_hex(4)}"
    sandbox = stack.create(engine, envs={"FROM_PARENT": "yes"})
    try:
        sandbox.files.write("/home/user/notes.txt", "snapshotted")
        sandbox.commands.run("rm /etc/motd || true; echo root-made > /opt/marker", user="root")
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
        forks = sandbox.fork(count=3, **stack.opts)
        assert all(isinstance(fork, Sandbox) for fork in forks), forks
        ids = {fork.sandbox_id for fork in forks}
        stack.seen.update(ids)
        assert len(ids) == 3 and sandbox.sandbox_id not in ids
        assert len({fork._envd_access_token for fork in forks}) == 3
        for index, fork in enumerate(forks):
            assert fork.files.read("/home/user/notes.txt") == "original"
            fork.files.write("/home/user/notes.txt", f"fork {index}")
        for index, fork in enumerate(forks):
            assert fork.files.read("/home/user/notes.txt") == f"fork {index}"
            assert fork.get_info().metadata.get("hutch.runtime") == engine
        assert sandbox.files.read("/home/user/notes.txt") == "original"
        for fork in forks:
            fork.kill()
    finally:
        sandbox.kill()


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
