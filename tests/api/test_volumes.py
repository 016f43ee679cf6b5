"""Volumes through the official SDK against the API over a fake runtime whose node keeps each volume as a
directory (the real node's ext4 images, mounts and size limits are tested with the container runtime): the
team's CRUD, isolation between teams, the volume token (another volume's, a wrong one, the API key are all
refused), the content API's streaming both ways, quotas, names, mounts on create (unknown names, hostile
paths) and the refusal to delete a mounted volume."""

from __future__ import annotations

import os
import shutil
import stat as stat_module
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox, SandboxException, Volume
from e2b.exceptions import AuthenticationException, NotFoundException, VolumeException

from hutch.api import create_app
from hutch.api.services import auth
from hutch.catalog.repos import sandboxes, teams
from hutch.config import QuotaSettings, Settings
from hutch.errors import InvalidRequest, NotFound
from hutch.runtime.capabilities import VolumeEntry
from hutch.runtime.fake import FakeRuntime
from hutch.secret_files import OPERATOR_KEY_HEADER, operator_key
from tests.api.conftest import Caller, Stack, register_test_templates, serving


class VolumeFakeRuntime(FakeRuntime):
    """The fake runtime with volumes as plain directories under ``top`` (trusted test content only), and
    the mounts of each sandbox it started remembered."""

    def __init__(self, top: Path, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.top = top
        self.mounted: dict[str, tuple[str, ...]] = {}

    async def create(self, spec):  # type: ignore[no-untyped-def]
        handle = await super().create(spec)
        self.mounted[handle.sandbox_id] = tuple(m.volume_id for m in spec.volumes)
        return handle

    def _path(self, volume_id: str, path: str) -> Path:
        if ".." in path.split("/"):
            raise InvalidRequest("no ..")
        return self.top / volume_id / path.lstrip("/")

    def _entry(self, volume_id: str, path: str) -> VolumeEntry:
        target = self._path(volume_id, path)
        if not target.exists():
            raise NotFound(f"path {path} not found")
        found = target.lstat()
        moment = datetime.fromtimestamp(found.st_mtime, UTC)
        kind = "directory" if stat_module.S_ISDIR(found.st_mode) else "file"
        return VolumeEntry(
            name=target.name, type=kind, path="/" + path.lstrip("/"), size=found.st_size,
            mode=found.st_mode & 0o7777, uid=1000, gid=1000, atime=moment, mtime=moment, ctime=moment,
        )  # fmt: skip

    async def create_volume(self, volume_id: str, *, size_mb: int) -> None:
        (self.top / volume_id).mkdir(parents=True)

    async def delete_volume(self, volume_id: str) -> None:
        shutil.rmtree(self.top / volume_id, ignore_errors=True)

    async def volume_used(self, volume_id: str) -> int:
        return 0

    async def volume_stat(self, volume_id: str, path: str) -> VolumeEntry:
        return self._entry(volume_id, path)

    async def volume_list(self, volume_id: str, path: str, *, depth: int) -> list[VolumeEntry]:
        top = self._path(volume_id, path)
        if not top.is_dir():
            raise NotFound(f"path {path} not found")
        return [self._entry(volume_id, f"{path.rstrip('/')}/{child.name}") for child in sorted(top.iterdir())]

    async def volume_make_dir(self, volume_id, path, *, uid, gid, mode, force):  # type: ignore[no-untyped-def]
        target = self._path(volume_id, path)
        if not force and not target.parent.is_dir():
            raise NotFound(f"path {path} not found")
        target.mkdir(parents=force, exist_ok=False)
        return self._entry(volume_id, path)

    async def volume_read(self, volume_id: str, path: str) -> AsyncIterator[bytes]:
        target = self._path(volume_id, path)
        if not target.is_file():
            raise NotFound(f"path {path} not found")
        with target.open("rb") as file:
            while chunk := file.read(65536):
                yield chunk

    async def volume_write(self, volume_id, path, chunks, *, uid, gid, mode, force):  # type: ignore[no-untyped-def]
        target = self._path(volume_id, path)
        if force:
            target.parent.mkdir(parents=True, exist_ok=True)
        elif not target.parent.is_dir():
            raise NotFound(f"path {path} not found")
        self.writes.append(0)
        with target.open("wb") as file:
            async for chunk in chunks:
                self.writes[-1] += 1
                file.write(chunk)
        return self._entry(volume_id, path)

    async def volume_change(self, volume_id, path, *, uid, gid, mode):  # type: ignore[no-untyped-def]
        if mode is not None:
            os.chmod(self._path(volume_id, path), mode)
        return self._entry(volume_id, path)

    async def volume_remove(self, volume_id: str, path: str) -> None:
        target = self._path(volume_id, path)
        if not target.exists():
            raise NotFound(f"path {path} not found")
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    writes: list[int] = []


@pytest.fixture(scope="module")
def volume_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("hutch-volumes")
    settings = Settings(
        data_dir=data, quotas=QuotaSettings(volumes=3, volume_size_mb=64, volume_disk_mb=1024)
    )
    runtime = VolumeFakeRuntime(data / "volumes", node_id=settings.runtime.node_id)
    with serving(create_app(settings, runtime=runtime)) as stack:
        register_test_templates(stack)
        yield stack


@pytest.fixture()
def team(volume_stack: Stack) -> Caller:
    return Caller(stack=volume_stack, api_key=volume_stack.new_key())


def _name() -> str:
    return f"v-{uuid.uuid4().hex[:12]}"


def test_a_volume_is_made_listed_read_back_with_its_token_and_deleted(team: Caller) -> None:
    volume = Volume.create(_name(), **team.opts)
    assert volume.token and volume.token.startswith("vol_")
    assert [v.volume_id for v in Volume.list(**team.opts)] == [volume.volume_id]
    info = Volume.get_info(volume.volume_id, **team.opts)
    assert (info.name, info.token, info.domain) == (volume.name, volume.token, None)
    assert Volume.destroy(volume.volume_id, **team.opts) is True
    assert Volume.destroy(volume.volume_id, **team.opts) is False
    assert Volume.list(**team.opts) == []


def test_another_teams_volume_is_unknown(team: Caller, volume_stack: Stack) -> None:
    volume = Volume.create(_name(), **team.opts)
    other = Caller(stack=volume_stack, api_key=volume_stack.new_key())
    with pytest.raises(NotFoundException):
        Volume.get_info(volume.volume_id, **other.opts)
    assert Volume.destroy(volume.volume_id, **other.opts) is False
    assert Volume.list(**other.opts) == []
    Volume.destroy(volume.volume_id, **team.opts)


def test_files_go_in_and_come_out_streamed(team: Caller) -> None:
    volume = Volume.connect(Volume.create(_name(), **team.opts).volume_id, api_url=team.stack.api_url,
                            api_key=team.api_key)  # fmt: skip
    content = {"api_url": team.stack.api_url}
    made = volume.make_dir("/data/deep", force=True, **content)
    assert made.type.value == "directory"
    payload = os.urandom(3 * 1024 * 1024)
    written = volume.write_file("/data/deep/blob.bin", payload, **content)
    assert written.size == len(payload)
    assert VolumeFakeRuntime.writes[-1] > 1  # the body reached the node in pieces, as it came
    assert volume.read_file("/data/deep/blob.bin", format="bytes", **content) == payload
    assert b"".join(volume.read_file("/data/deep/blob.bin", format="stream", **content)) == payload
    assert [e.name for e in volume.list("/data", **content)] == ["deep"]
    assert volume.get_info("/data/deep/blob.bin", **content).size == len(payload)
    assert volume.update_metadata("/data/deep/blob.bin", mode=0o600, **content).mode == 0o600
    volume.remove("/data", **content)
    assert volume.exists("/data", **content) is False
    with pytest.raises(NotFoundException):
        volume.read_file("/missing", **content)


def test_the_volume_token_opens_only_its_volume(team: Caller) -> None:
    one = Volume.create(_name(), **team.opts)
    two = Volume.create(_name(), **team.opts)
    url = f"{team.stack.api_url}/volumecontent/{one.volume_id}/path"
    cases = {
        "none": {},
        "wrong": {"Authorization": "Bearer vol_not-the-token"},
        "other volume's": {"Authorization": f"Bearer {two.token}"},
        "api key": {"Authorization": f"Bearer {team.api_key}"},
        "api key header": {"X-API-Key": team.api_key},
        "basic": {"Authorization": f"Basic {one.token}"},
    }
    for name, headers in cases.items():
        response = httpx.get(url, params={"path": "/"}, headers=headers)
        assert response.status_code == 401, name
        assert httpx.get(url, headers=headers).status_code == 401, name  # before the query is looked at
    write = httpx.put(
        f"{team.stack.api_url}/volumecontent/{one.volume_id}/file",
        params={"path": "/x"}, content=b"x" * 10, headers={"Authorization": f"Bearer {two.token}"},
    )  # fmt: skip
    assert write.status_code == 401
    with pytest.raises(AuthenticationException):
        Volume(one.volume_id, one.name, token=two.token).list("/", api_url=team.stack.api_url)
    ok = httpx.get(url, params={"path": "/"}, headers={"Authorization": f"Bearer {one.token}"})
    assert ok.status_code == 200 and ok.json()["type"] == "directory"
    for volume in (one, two):
        Volume.destroy(volume.volume_id, **team.opts)


def test_a_deleted_volumes_token_finds_nothing(team: Caller) -> None:
    volume = Volume.create(_name(), **team.opts)
    Volume.destroy(volume.volume_id, **team.opts)
    response = httpx.get(
        f"{team.stack.api_url}/volumecontent/{volume.volume_id}/path",
        params={"path": "/"}, headers={"Authorization": f"Bearer {volume.token}"},
    )  # fmt: skip
    assert response.status_code == 404


@pytest.mark.parametrize("name", ["", "has space", "dots.are.out", "slash/x", "a" * 65, "ünï", "x\n"])
def test_bad_names_are_a_400(team: Caller, name: str) -> None:
    with team.http() as client:
        response = client.post("/volumes", json={"name": name})
    assert response.status_code == 400, response.text


def test_a_name_is_unique_in_a_team(team: Caller) -> None:
    name = _name()
    volume = Volume.create(name, **team.opts)
    with pytest.raises(VolumeException, match="exists already"):
        Volume.create(name, **team.opts)
    Volume.destroy(volume.volume_id, **team.opts)


def test_the_team_quotas_hold(team: Caller, volume_stack: Stack) -> None:
    made = [Volume.create(_name(), **team.opts) for _ in range(3)]
    with team.http() as client:
        response = client.post("/volumes", json={"name": _name()})
    assert response.status_code == 429 and "quota volumes exceeded" in response.json()["message"]
    for volume in made:
        Volume.destroy(volume.volume_id, **team.opts)
    # A team whose own total is below one volume's size can make none.
    volume_stack.run(_set_quotas(volume_stack, _team_id(volume_stack, team), {"volume_disk_mb": 32}))
    with team.http() as client:
        response = client.post("/volumes", json={"name": _name()})
    assert response.status_code == 429 and "volume_disk_mb" in response.json()["message"]


def _team_id(stack: Stack, caller: Caller) -> str:
    return stack.run(auth.team_for_key(catalog=stack.app.state.catalog, api_key=caller.api_key)).team_id


async def _set_quotas(stack: Stack, team_id: str, changes: dict[str, int | None]) -> None:
    async with stack.app.state.catalog.transaction() as session:
        team = await teams.get(session, team_id)
        await teams.set_quotas(session, team, changes)


async def _mark_paused(stack: Stack, sandbox_id: str) -> None:
    async with stack.app.state.catalog.transaction() as session:
        (await sandboxes.get(session, sandbox_id)).state = "paused"


def test_a_create_mounts_volumes_by_name_and_a_mounted_volume_stays(team: Caller) -> None:
    volume = Volume.create(_name(), **team.opts)
    sandbox = Sandbox.create("base", volume_mounts={"/mnt/data": volume}, **team.opts)
    runtime: VolumeFakeRuntime = team.stack.app.state.runtime
    assert runtime.mounted[sandbox.sandbox_id] == (volume.volume_id,)
    with team.http() as client:
        detail = client.get(f"/sandboxes/{sandbox.sandbox_id}").json()
        listed = client.get("/v2/sandboxes").json()
        refused = client.delete(f"/volumes/{volume.volume_id}")
    assert detail["volumeMounts"] == [{"name": volume.name, "path": "/mnt/data"}]
    assert listed[0]["volumeMounts"] == [{"name": volume.name, "path": "/mnt/data"}]
    assert refused.status_code == 409 and sandbox.sandbox_id in refused.json()["message"]
    team.stack.run(_mark_paused(team.stack, sandbox.sandbox_id))  # the fake runtime cannot pause
    with team.http() as client:
        assert client.delete(f"/volumes/{volume.volume_id}").status_code == 409  # paused: still mounted
    Sandbox.kill(sandbox.sandbox_id, **team.opts)
    assert Volume.destroy(volume.volume_id, **team.opts) is True


@pytest.mark.parametrize(
    ("mounts", "message"),
    [
        ([{"name": "no-such-volume", "path": "/mnt"}], "no volume named 'no-such-volume'"),
        ([{"name": "x", "path": "relative"}], "absolute"),
        ([{"name": "x", "path": "/"}], "cannot be mounted"),
        ([{"name": "x", "path": "/proc/x"}], "cannot be mounted"),
        ([{"name": "x", "path": "/mnt/../etc"}], "normal"),
        ([{"name": "x", "path": "/mnt//a"}], "normal"),
        ([{"name": "x", "path": "/mnt/\na"}], "absolute"),
        ([{"name": "x", "path": "/a"}, {"name": "y", "path": "/a"}], "same path"),
        ([{"name": "x", "path": f"/m{i}"} for i in range(17)], "at most 16"),
    ],
)
def test_bad_mounts_are_a_400_and_start_nothing(team: Caller, mounts: list, message: str) -> None:
    before = set(team.stack.handles())
    with team.http() as client:
        response = client.post("/v2/sandboxes", json={"templateID": "base", "volumeMounts": mounts})
    assert response.status_code == 400 and message in response.json()["message"], response.text
    assert set(team.stack.handles()) <= before


def test_another_teams_volume_cannot_be_mounted(team: Caller, volume_stack: Stack) -> None:
    volume = Volume.create(_name(), **team.opts)
    other = Caller(stack=volume_stack, api_key=volume_stack.new_key())
    with pytest.raises(SandboxException, match="no volume named"):
        Sandbox.create("base", volume_mounts={"/mnt": volume.name}, **other.opts)
    Volume.destroy(volume.volume_id, **team.opts)


def test_deleting_a_team_deletes_its_volumes_on_their_node(volume_stack: Stack) -> None:
    data_dir = volume_stack.app.state.settings.data_dir
    operator = {OPERATOR_KEY_HEADER: operator_key(data_dir)}
    with httpx.Client(base_url=f"{volume_stack.api_url}/admin", headers=operator) as admin:
        created = admin.post("/teams", json={"name": f"t-{uuid.uuid4().hex[:12]}"})
        assert created.status_code == 201, created.text
        team_id = created.json()["teamID"]
        key = admin.post(f"/teams/{team_id}/keys", json={"name": "ops"}).json()["key"]
        volume = Volume.create(_name(), api_key=key, api_url=volume_stack.api_url)
        assert (data_dir / "volumes" / volume.volume_id).is_dir()
        assert admin.delete(f"/teams/{team_id}").status_code == 204
    assert not (data_dir / "volumes" / volume.volume_id).exists()


def test_content_calls_count_against_the_teams_rate(team: Caller, volume_stack: Stack) -> None:
    volume = Volume.create(_name(), **team.opts)
    limiter = volume_stack.app.state.request_limiter
    team_id = _team_id(volume_stack, team)
    headers = {"Authorization": f"Bearer {volume.token}"}
    try:
        with httpx.Client(base_url=volume_stack.api_url, headers=headers) as client:
            limiter._buckets[team_id] = (0.0, time.monotonic() + 60)  # the team's bucket is empty
            refused = client.get(f"/volumecontent/{volume.volume_id}/dir", params={"path": "/"})
            assert refused.status_code == 429 and "Retry-After" in refused.headers
            limiter._buckets.pop(team_id)
            assert (
                client.get(f"/volumecontent/{volume.volume_id}/dir", params={"path": "/"}).status_code == 200
            )
    finally:
        Volume.destroy(volume.volume_id, **team.opts)
