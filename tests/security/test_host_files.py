"""What Hutch keeps on the host is root's alone, and the stack's log holds no credential.

After sandboxes ran, were snapshotted and paused with their memory on gVisor (checkpoints), nothing in the
stack's data directory may be read, written or entered by group or others, save the sandboxes' own trees
(their modes are the tenant's) and a short list of harmless files, each with its reason; the template
cache and each snapshot's checkpoint are root's alone, and so are the catalog, the client settings file
and the log. The log, after SDK calls of every kind (files, commands, signed URLs, a snapshot, a pause),
holds neither the API key nor any sandbox's token. The unit tests below check each maker of a private
file on its own, under a umask that would leave it open.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from e2b import Sandbox
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from hutch.catalog import Catalog
from hutch.config import Settings
from hutch.private_files import narrow, private_directory, write_private
from hutch.runtime.container.checkpoints import Checkpoint
from hutch.secret_files import load_or_create
from tests.stack import Stack

PRIVATE = 0o077  # no bit for group or others

# The sandboxes' own trees, neither entered nor checked: their modes are the tenant's. A sandbox's root file
# system, the disk with its writable layer (both mount points) and that disk's image.
TENANT_TREES = ("sandboxes/*/rootfs", "sandboxes/*/disk", "sandboxes/*/disk.img")

# What else may be open to others, and why. All of it lies in the data directory, which is root's alone
# (checked), so no other user reaches it anyway.
OPEN = {
    "*.pid": "a process id, public in /proc anyway",
    "envd/envd.pyz": "envd's program, mounted read-only into every sandbox: no secret in it",
    "debug-sandbox.json": "the address of the local development sandbox (no credential in it)",
    # The directories a sandbox's engine must traverse as the sandbox's own (mapped) root, inside the data
    # directory, which no other user enters; the secrets in them (OCI config, state) are root's alone.
    # crun makes a sandbox's root private from inside its user namespace, whose root must traverse these.
    "sandboxes": "traversed by the engine in the sandbox's user namespace",
    "sandboxes/*": "traversed by the engine in the sandbox's user namespace",
    "sandboxes/*/sys": "the empty mount point of the sandbox's own sysfs",
}


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _matches(path: Path, root: Path, patterns: Iterable[str]) -> bool:
    return any(path.relative_to(root).match(pattern) for pattern in patterns)


def _open_to_others(root: Path, skip: tuple[str, ...] = (), allowed: Iterable[str] = ()) -> list[str]:
    """Paths under ``root`` (itself too) with a bit for group or others, but for symlinks, mount points,
    ``skip`` (patterns relative to ``root``, not entered) and ``allowed`` (patterns, entered)."""
    candidates = [root]
    for directory, names, files in os.walk(root):
        here = Path(directory)
        names[:] = [n for n in names if not (here / n).is_mount() and not _matches(here / n, root, skip)]
        candidates += [here / name for name in names + files]
    found = []
    for path in candidates:
        if path.is_symlink() or _matches(path, root, (*skip, *allowed)):
            continue
        try:
            mode = _mode(path)
        except FileNotFoundError:  # a warm sandbox's file, gone since
            continue
        if mode & PRIVATE:
            found.append(f"{path} {mode:o}")
    return found


@pytest.fixture(scope="module")
def used_stack(stack: Stack) -> Iterator[tuple[Stack, list[str], str]]:
    """The stack after sandboxes ran, one of them snapshotted with its memory and paused with it (gVisor),
    and one left running; their access tokens and the signatures of the URLs used, and the snapshot's id."""
    secrets: list[str] = []
    running = stack.create("gvisor")
    paused = stack.create("gvisor")
    snapshot = None
    try:
        for sandbox in (running, paused):
            secrets.append(sandbox._envd_access_token)
            sandbox.files.write("/home/user/notes.txt", "private")
            assert sandbox.commands.run("cat /home/user/notes.txt").stdout == "private"
            # Signed URLs, routed by the headers the SDK's sandbox_url mode uses.
            route = {"E2b-Sandbox-Id": sandbox.sandbox_id, "E2b-Sandbox-Port": "49983"}
            upload = sandbox.upload_url("/home/user/up.txt")
            download = sandbox.download_url("/home/user/up.txt")
            secrets += [parse_qs(urlsplit(url).query)["signature"][0] for url in (upload, download)]
            assert httpx.post(upload, files={"file": b"signed"}, headers=route).status_code < 300
            assert httpx.get(download, headers=route).text == "signed"
        snapshot = paused.create_snapshot().snapshot_id
        assert paused.pause() is not False
        yield stack, secrets, snapshot
    finally:
        for sandbox in (running, paused):
            sandbox.kill()
        if snapshot is not None:
            Sandbox.delete_snapshot(snapshot, **stack.opts)


def test_the_data_directory_is_roots_alone(used_stack: tuple[Stack, list[str], str]):
    stack, _, _ = used_stack
    assert os.stat(stack.data_dir).st_uid == 0
    found = _open_to_others(stack.data_dir, TENANT_TREES, OPEN)
    assert found == [], "\n".join(found)


def test_the_catalog_and_the_client_settings_are_roots_alone(used_stack: tuple[Stack, list[str], str]):
    stack, _, _ = used_stack
    for name in ("hutch.db", "hutch.db-wal", "hutch.db-shm"):
        assert _mode(stack.data_dir / name) == 0o600, name
    env_file = stack.data_dir.parent / "env.local"
    assert _mode(env_file) == 0o600
    assert _mode(stack.data_dir.parent / "hutch.log") == 0o600


def test_the_template_cache_and_snapshot_checkpoints_are_roots_alone(
    used_stack: tuple[Stack, list[str], str],
):
    _, _, snapshot = used_stack
    cache = Settings().templates.cache_dir  # the stack's: it inherits this process's environment
    assert _mode(cache) == 0o700 and os.stat(cache).st_uid == 0
    checkpoint = cache / "checkpoints" / snapshot
    assert _mode(checkpoint) == 0o700 and _mode(checkpoint / "image") == 0o700
    assert _mode(checkpoint / "token") == 0o600


def test_the_log_holds_no_key_no_token_and_no_signature(used_stack: tuple[Stack, list[str], str]):
    stack, secrets, _ = used_stack
    log = (stack.data_dir.parent / "hutch.log").read_text(errors="replace")
    assert "Hutch is up" in log  # the log is the one the stack writes
    assert stack.api_key not in log
    for secret in secrets:
        assert secret and secret not in log


# What makes each private file, alone (a umask that would leave them open to others does not).


@pytest.fixture()
def open_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


async def test_a_new_catalog_file_and_its_wal_and_shm_are_private(tmp_path: Path, open_umask):
    database = tmp_path / "data" / "hutch.db"
    catalog = await Catalog.open(f"sqlite:///{database}")
    try:
        async with catalog.transaction() as session:
            await session.execute(text("select 1"))
        assert _mode(database.parent) == 0o700
        for name in ("hutch.db", "hutch.db-wal", "hutch.db-shm"):
            assert _mode(database.parent / name) == 0o600, name
    finally:
        await catalog.close()


async def test_an_existing_catalog_file_is_narrowed(tmp_path: Path, open_umask):
    names = ("hutch.db", "hutch.db-wal", "hutch.db-shm")
    for name in names:
        (tmp_path / name).touch(mode=0o644)  # from an older Hutch
    catalog = await Catalog.open(f"sqlite:///{tmp_path / 'hutch.db'}")
    try:
        for name in names:
            assert _mode(tmp_path / name) == 0o600, name
    finally:
        await catalog.close()


def test_written_settings_replace_an_open_file_with_a_private_one(tmp_path: Path, open_umask):
    settings = tmp_path / ".env.local"
    settings.write_text("E2B_API_KEY=old\n")
    assert _mode(settings) == 0o644
    write_private(settings, "E2B_API_KEY=new\n")
    assert settings.read_text() == "E2B_API_KEY=new\n" and _mode(settings) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == [".env.local"]  # no partial file left


def test_private_directories_and_narrowed_files(tmp_path: Path, open_umask):
    existing = tmp_path / "data"
    existing.mkdir(mode=0o755)
    assert private_directory(existing) == existing and _mode(existing) == 0o700
    assert _mode(private_directory(tmp_path / "a" / "b")) == 0o700
    (tmp_path / "old.log").touch(mode=0o644)
    narrow(tmp_path / "old.log")
    narrow(tmp_path / "missing.log")
    assert _mode(tmp_path / "old.log") == 0o600 and not (tmp_path / "missing.log").exists()


def test_keys_are_private_in_a_private_directory(tmp_path: Path, open_umask):
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o755)  # from an older Hutch
    key = load_or_create(secrets / "node.key")
    assert len(key) == 32 and load_or_create(secrets / "node.key") == key
    assert _mode(secrets) == 0o700 and _mode(secrets / "node.key") == 0o600
    assert [path.name for path in secrets.iterdir()] == ["node.key"]


def test_a_checkpoint_is_private(tmp_path: Path, open_umask):
    checkpoint = Checkpoint(tmp_path / "checkpoints" / "snapshot")
    checkpoint.create("the-token")
    assert _mode(checkpoint.directory) == 0o700 and _mode(checkpoint.image) == 0o700
    assert _mode(checkpoint.directory / "token") == 0o600 and checkpoint.token() == "the-token"


async def test_a_database_error_does_not_show_the_values_of_its_statement(tmp_path: Path):
    catalog = await Catalog.open(f"sqlite:///{tmp_path / 'hutch.db'}")
    try:
        with pytest.raises(OperationalError) as raised:
            async with catalog.transaction() as session:
                await session.execute(text("select :token from no_such_table"), {"token": "a-secret-token"})
        assert "a-secret-token" not in str(raised.value)
    finally:
        await catalog.close()
