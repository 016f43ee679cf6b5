"""Builds and images are per team, through the official SDK against the real stack, with two real teams.

Team B claims team A's files hash for other bytes, builds A's steps with them, forces a rebuild, and
builds A's template through the SDK: B gets layers of its own each time, and A's template, its rebuild
from the cache and new sandboxes of it keep A's files. A private image pulled by A with its credentials is
not served to B without B's own. A registry at an internal address is refused before any connection. A
step that floods its output leaves the API answering and the build's log bounded. A team's concurrent
builds are bounded by its quota. Deleting a template deletes the layers only it used.
"""

from __future__ import annotations

import io
import json
import secrets
import sqlite3
import subprocess
import tarfile
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from e2b import BuildException, LogEntry, RateLimitException, Sandbox, Template

from hutch.templates.builder import BuildOutput
from tests.e2e.test_templates import tiny_image
from tests.registry import bcrypt_hash, push
from tests.stack import Stack, Team

BUILD_OPTS = {"request_timeout": 60}
BUILD_TIMEOUT_S = 600


def unique() -> str:
    return secrets.token_hex(4)


def build(opts: dict, template, name: str, **options) -> list[LogEntry]:
    """Build ``template`` as ``name`` through the SDK; its log entries."""
    logs: list[LogEntry] = []
    Template.build(template, name, on_build_logs=logs.append, **BUILD_OPTS, **opts, **options)
    return logs


def read_in_new_sandbox(stack: Stack, opts: dict, name: str, path: str) -> str:
    sandbox = Sandbox.create(name, **opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        return sandbox.files.read(path)
    finally:
        sandbox.kill()


def tar_of(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(content), 0o644
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def client(stack: Stack, api_key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.api_url, headers={"X-API-Key": api_key}, timeout=60)


def raw_build(http: httpx.Client, name: str, body: dict) -> dict:
    """Start a new build of the caller's template ``name`` with ``body``; its final status, with every
    log line."""
    made = http.post("/v3/templates", json={"name": name})
    assert made.status_code == 202, made.text
    build_id = made.json()["buildID"]
    started = http.post(f"/v2/templates/{made.json()['templateID']}/builds/{build_id}", json=body)
    assert started.status_code == 202, started.text
    return wait_for_build(http, made.json()["templateID"], build_id)


def wait_for_build(http: httpx.Client, template_id: str, build_id: str) -> dict:
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    logs: list[str] = []
    while time.monotonic() < deadline:
        status = http.get(
            f"/templates/{template_id}/builds/{build_id}/status", params={"logsOffset": len(logs)}
        )
        assert status.status_code == 200, status.text
        body = status.json()
        logs += body["logs"]
        if body["status"] in ("ready", "error"):
            return {**body, "logs": logs}
        time.sleep(0.5)
    pytest.fail(f"build {build_id} did not end within {BUILD_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def team_b(stack: Stack) -> Team:
    return stack.new_team()


def test_another_team_never_gets_nor_changes_a_teams_layers(
    stack: Stack, team_b: Team, tmp_path: Path
) -> None:
    secret = f"team A's secret {unique()}\n"
    (tmp_path / "secret.txt").write_text(secret)

    def template() -> Template:  # a new one for each build: a build with skip_cache forces the one it gets
        return (
            Template(file_context_path=tmp_path).from_template("base").copy("secret.txt", "/opt/secret.txt")
        )

    body = json.loads(Template.to_json(template()))
    files_hash = next(step["filesHash"] for step in body["steps"] if step["type"] == "COPY")
    name_a = f"cache-a-{unique()}"
    template_a = Template.build(template(), name_a, **BUILD_OPTS, **stack.opts).template_id
    assert read_in_new_sandbox(stack, stack.opts, name_a, "/opt/secret.txt") == secret

    poison = f"team B's poison {unique()}\n"
    name_b = f"cache-b-{unique()}"
    with client(stack, team_b.api_key) as b:
        made = b.post("/v3/templates", json={"name": name_b})
        assert made.status_code == 202, made.text
        template_b = made.json()["templateID"]
        # B cannot reach A's uploads: not by A's template id, not with its own signed URL pointed at them.
        assert b.get(f"/templates/{template_a}/files/{files_hash}").status_code == 404
        link = b.get(f"/templates/{template_b}/files/{files_hash}")
        assert link.status_code == 201 and link.json()["present"] is False, link.text
        url = link.json()["url"]
        assert (
            httpx.put(url.replace(template_b, template_a), content=tar_of("secret.txt", b"x")).status_code
            == 401
        )
        # B claims A's files hash for other bytes: that is B's own upload, under B's own template only.
        assert httpx.put(url, content=tar_of("secret.txt", poison.encode())).status_code == 201
        start = b.post(f"/v2/templates/{template_b}/builds/{made.json()['buildID']}", json=body)
        assert start.status_code == 202, start.text
        first = wait_for_build(b, template_b, made.json()["buildID"])
        assert first["status"] == "ready", first
        assert not any("CACHED" in line for line in first["logs"]), "B's build reused A's layer"
        # A forced rebuild by B, with the same steps and files hash.
        forced = raw_build(b, name_b, {**body, "force": True})
        assert forced["status"] == "ready", forced
    assert read_in_new_sandbox(stack, team_b.opts, name_b, "/opt/secret.txt") == poison

    # B builds A's very template (the same files) through the SDK, cached and forced: layers of its own.
    name_c = f"cache-c-{unique()}"
    assert not any("CACHED COPY" in entry.message for entry in build(team_b.opts, template(), name_c))
    build(team_b.opts, template(), name_c, skip_cache=True)

    # A's template, its rebuild from the cache and a new sandbox of it keep A's files.
    assert read_in_new_sandbox(stack, stack.opts, name_a, "/opt/secret.txt") == secret
    again = [entry.message for entry in build(stack.opts, template(), name_a)]
    assert any("CACHED COPY" in message for message in again), again
    assert read_in_new_sandbox(stack, stack.opts, name_a, "/opt/secret.txt") == secret


def test_a_private_image_is_not_served_to_another_team(
    stack: Stack, team_b: Team, start_registry, tmp_path: Path
) -> None:
    hashed = bcrypt_hash("s3cret")
    if hashed is None:
        pytest.skip("no bcrypt here (neither the bcrypt package nor the crypt module) for an htpasswd file")
    registry = start_registry(htpasswd=f"alice:{hashed}")
    name = f"{registry.host}/hutch/private:{unique()}"
    push(tiny_image(tmp_path / "image"), name, "--dest-creds=alice:s3cret")
    inspect = ["skopeo", "inspect", "--tls-verify=false", "--creds=alice:s3cret", "--format={{.Digest}}"]
    digest = subprocess.run([*inspect, f"docker://{name}"], capture_output=True, text=True, check=True).stdout
    pinned = f"{name.rpartition(':')[0]}@{digest.strip()}"

    private = Template().from_image(name, username="alice", password="s3cret").run_cmd("true", user="root")
    build(stack.opts, private, f"private-a-{unique()}")
    for template in (
        Template().from_image(pinned).run_cmd("true", user="root"),
        Template().from_image(pinned, username="alice", password="wrong").run_cmd("true", user="root"),
    ):
        with pytest.raises(BuildException, match=r"denied|authentication"):
            build(team_b.opts, template, f"private-b-{unique()}")


def test_a_registry_at_an_internal_address_is_refused(stack: Stack, team_b: Team) -> None:
    for registry in ("169.254.169.254", "10.0.0.1:5000", "[fd00::1]"):
        template = Template().from_image(f"{registry}/hutch/x:1").run_cmd("true")
        with pytest.raises(BuildException, match="internal address"):
            build(team_b.opts, template, f"internal-{unique()}")


def test_a_team_beyond_its_concurrent_builds_quota_gets_a_429(stack: Stack) -> None:
    team = stack.new_team(concurrent_builds=0)
    with pytest.raises(RateLimitException, match="quota concurrent_builds exceeded"):
        build(team.opts, Template().from_template("base").run_cmd("true"), f"busy-{unique()}")


def test_a_flood_of_output_leaves_the_api_answering_and_the_log_bounded(stack: Stack, team_b: Team) -> None:
    answers: list[int] = []
    done = threading.Event()

    def poll_health() -> None:
        with httpx.Client(timeout=30) as http:
            while not done.is_set():
                try:
                    answers.append(http.get(f"{stack.api_url}/health").status_code)
                except httpx.HTTPError:
                    answers.append(0)
                time.sleep(0.2)

    template = (
        Template()
        .from_template("base")
        .run_cmd("head -c 8000000 /dev/zero | tr '\\0' x; echo; echo after-the-long-line")
        .run_cmd("seq 1000000")
    )
    poller = threading.Thread(target=poll_health, daemon=True)
    poller.start()
    try:
        logs = build(team_b.opts, template, f"flood-{unique()}")
    finally:
        done.set()
        poller.join(60)
    assert answers and all(200 <= status < 300 for status in answers), answers
    bounds = BuildOutput()
    messages = [entry.message for entry in logs]
    assert len(messages) <= bounds.entries + 50
    assert max(len(message) for message in messages) < bounds.line_chars + 100
    assert any(message.endswith("more characters cut]") for message in messages)
    assert any("lines of output were dropped" in message for message in messages)


def test_deleting_a_template_deletes_the_layers_only_it_used(stack: Stack, team_b: Team) -> None:
    keep = Template().from_template("base").run_cmd(f"echo {unique()} > /opt/keep", user="root")
    build(team_b.opts, keep, kept := f"kept-{unique()}")
    gone = Template().from_template(kept).run_cmd(f"echo {unique()} > /opt/gone", user="root")
    built = Template.build(gone, f"gone-{unique()}", **BUILD_OPTS, **team_b.opts)
    chain = layer_dirs(stack, built.template_id)
    assert len(chain) == 2 and all(path.is_dir() for path in chain)
    with client(stack, team_b.api_key) as b:
        assert b.delete(f"/templates/{built.template_id}").status_code == 204
    deadline = time.monotonic() + 60
    while chain[0].exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not chain[0].exists() and chain[1].is_dir()
    assert read_in_new_sandbox(stack, team_b.opts, kept, "/opt/keep")


def layer_dirs(stack: Stack, template_id: str) -> list[Path]:
    """The layer directories of a template's root filesystem (top first), from the stack's catalog."""
    with closing(sqlite3.connect(stack.data_dir / "hutch.db")) as database:
        (rootfs,) = database.execute(
            "select rootfs from templates where template_id = ?", (template_id,)
        ).fetchone()
    return [Path(part) for part in rootfs.split(":") if "/layers/data/" in part]
