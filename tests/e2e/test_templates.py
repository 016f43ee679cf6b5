"""Template builds through the official SDK's ``Template`` against the real stack: every step type, start
and ready commands, build errors naming the failing step, the layer cache, tags and aliases, bases from a
registry on loopback and from the Debian archive (neither with Python), and then sandboxes from the new
templates."""

from __future__ import annotations

import secrets
import socket
import time
from pathlib import Path

import httpx
import pytest
from e2b import BuildException, LogEntry, Sandbox, Template, wait_for_port

from tests.registry import new_image, push, umoci
from tests.stack import Stack
from tests.tiny_rootfs import tiny_rootfs

# A build may take a while (a cold one starts a sandbox per step); the SDK polls until it ends.
BUILD_OPTS = {"request_timeout": 60}


def build(stack: Stack, template, name: str, **options) -> list[LogEntry]:
    """Build ``template`` as ``name``; returns its log entries."""
    logs: list[LogEntry] = []
    Template.build(template, name, on_build_logs=logs.append, **BUILD_OPTS, **stack.opts, **options)
    return logs


def create(stack: Stack, name: str) -> Sandbox:
    sandbox = Sandbox.create(name, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    return sandbox


def unique() -> str:
    return secrets.token_hex(4)


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A build context: a file, a directory tree with a dotfile, an executable script, and a marker that
    makes its files (and so its layers) new on every run."""
    (tmp_path / "app.txt").write_text("app file\n")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "a.txt").write_text("a\n")
    (tmp_path / "tree" / ".hidden").write_text("hidden\n")
    (tmp_path / "tree" / "sub" / "b.txt").write_text("b\n")
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho script-ran\n")
    script.chmod(0o755)
    (tmp_path / "marker.txt").write_text(unique())
    return tmp_path


def test_every_step_then_a_sandbox(stack: Stack, context: Path) -> None:
    name = f"steps-{unique()}"
    template = (
        Template(file_context_path=context)
        .from_template("base")
        .copy("marker.txt", "/opt/marker.txt")
        .copy("app.txt", "/opt/app/")
        .copy("tree", "/opt/tree")
        .copy("run.sh", "/usr/local/bin/run-it", mode=0o755)
        .run_cmd("echo made-by-root > /opt/root.txt && id -u > /opt/root-uid", user="root")
        .set_envs({"GREETING": "hello", "COMBINED": "$GREETING-world"})
        .set_user("worker")
        .set_workdir("/home/worker/work")
        .run_cmd(
            "whoami > who.txt && pwd >> who.txt && echo $GREETING $COMBINED >> who.txt && run-it >> who.txt"
        )
        .set_start_cmd("python3 -m http.server 8000", wait_for_port(8000))
    )
    build(stack, template, name)
    sandbox = create(stack, name)
    try:
        files = sandbox.files
        assert files.read("/opt/app/app.txt") == "app file\n"
        assert files.read("/opt/tree/a.txt") == "a\n"
        assert files.read("/opt/tree/.hidden") == "hidden\n"
        assert files.read("/opt/tree/sub/b.txt") == "b\n"
        assert files.read("/opt/root.txt") == "made-by-root\n"
        assert files.read("/opt/root-uid").strip() == "0"
        # COPY owns files by the build's user at that point (``user``), with the mode asked for.
        owner = sandbox.commands.run("stat -c '%U %a' /opt/tree/a.txt /usr/local/bin/run-it", user="root")
        assert owner.stdout.split("\n")[:2] == ["user 644", "user 755"]
        assert (
            files.read("/home/worker/work/who.txt")
            == "worker\n/home/worker/work\nhello hello-world\nscript-ran\n"
        )
        # The template's user, workdir and env are the sandbox's defaults.
        result = sandbox.commands.run("whoami; pwd; echo $COMBINED")
        assert result.stdout == "worker\n/home/worker/work\nhello-world\n"
        # The start command runs, and the sandbox was handed out only once it answered.
        page = sandbox.commands.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/")
        assert page.stdout == "200"
    finally:
        sandbox.kill()


def test_a_failing_step_fails_the_build_and_names_it(stack: Stack) -> None:
    template = Template().from_template("base").run_cmd("echo fine").run_cmd("echo going down >&2; exit 3")
    logs: list[LogEntry] = []
    with pytest.raises(BuildException) as raised:
        Template.build(template, f"broken-{unique()}", on_build_logs=logs.append, **BUILD_OPTS, **stack.opts)
    assert "step 1" in str(raised.value) and "exit code 3" in str(raised.value)
    assert any("going down" in entry.message for entry in logs)


def test_a_second_build_reuses_every_layer(stack: Stack, context: Path) -> None:
    name = f"cached-{unique()}"

    def template() -> Template:
        return (
            Template(file_context_path=context)
            .from_template("base")
            .copy("marker.txt", "/opt/marker.txt")
            .run_cmd("cat /opt/marker.txt > /opt/copy.txt", user="root")
            .set_workdir("/opt")
        )

    first = build(stack, template(), name)
    assert not [entry for entry in first if "CACHED" in entry.message]
    second = build(stack, template(), name)
    assert len([entry for entry in second if "CACHED" in entry.message]) == 3
    forced = build(stack, template(), name, skip_cache=True)
    assert not [entry for entry in forced if "CACHED" in entry.message]
    sandbox = create(stack, name)
    try:
        assert sandbox.files.read("/opt/copy.txt") == (context / "marker.txt").read_text()
    finally:
        sandbox.kill()


def test_tags_aliases_and_delete(stack: Stack) -> None:
    name = f"tagged-{unique()}"
    build(stack, Template().from_template("base").run_cmd("echo one > /opt/v", user="root"), f"{name}:v1")
    build(stack, Template().from_template("base").run_cmd("echo two > /opt/v", user="root"), f"{name}:v2")
    assert Template.exists(name, **stack.opts)
    assert not Template.exists(f"missing-{unique()}", **stack.opts)
    for tag, wanted in (("v1", "one\n"), ("v2", "two\n"), (None, "two\n")):
        sandbox = create(stack, f"{name}:{tag}" if tag else name)
        try:
            assert sandbox.files.read("/opt/v") == wanted
        finally:
            sandbox.kill()
    Template.assign_tags(f"{name}:v1", ["stable"], **stack.opts)
    tags = {tag.tag: tag.build_id for tag in Template.get_tags(name, **stack.opts)}
    assert set(tags) == {"v1", "v2", "stable"} and tags["stable"] == tags["v1"]
    Template.remove_tags(name, ["stable"], **stack.opts)
    assert {tag.tag for tag in Template.get_tags(name, **stack.opts)} == {"v1", "v2"}
    headers = {"X-API-Key": stack.api_key}
    detail = httpx.get(f"{stack.api_url}/templates/{name}", headers=headers).json()
    assert [build["status"] for build in detail["builds"]] == ["ready", "ready"]
    assert detail["buildID"] == detail["builds"][0]["buildID"] == tags["v2"] and detail["buildCount"] == 2
    deleted = httpx.delete(f"{stack.api_url}/templates/{name}", headers=headers)
    assert deleted.status_code == 204
    assert not Template.exists(name, **stack.opts)
    assert httpx.get(f"{stack.api_url}/templates/{name}", headers=headers).status_code == 404


def test_a_template_built_on_a_built_template(stack: Stack) -> None:
    parent = f"parent-{unique()}"
    build(
        stack, Template().from_template("base").set_envs({"FROM_PARENT": "yes"}).set_workdir("/srv"), parent
    )
    child = f"child-{unique()}"
    build(stack, Template().from_template(parent).run_cmd("echo $FROM_PARENT > marker", user="root"), child)
    sandbox = create(stack, child)
    try:
        assert sandbox.files.read("/srv/marker") == "yes\n"
    finally:
        sandbox.kill()


def test_upload_urls_authorise_only_themselves(stack: Stack) -> None:
    headers = {"X-API-Key": stack.api_key}
    created = httpx.post(f"{stack.api_url}/v3/templates", json={"name": f"upl-{unique()}"}, headers=headers)
    template_id = created.json()["templateID"]
    files_hash = "ab" * 32
    link = httpx.get(f"{stack.api_url}/templates/{template_id}/files/{files_hash}", headers=headers)
    assert link.status_code == 201 and link.json()["present"] is False
    url = link.json()["url"]
    assert httpx.put(url.replace("signature=", "signature=0"), content=b"x").status_code == 401
    other_hash = url.replace(files_hash, "cd" * 32)
    assert httpx.put(other_hash, content=b"x").status_code == 401
    assert httpx.put(url, content=b"archive").status_code == 201
    again = httpx.get(f"{stack.api_url}/templates/{template_id}/files/{files_hash}", headers=headers)
    assert again.json() == {"present": True}


def test_an_image_that_cannot_be_had_is_a_quick_build_error(stack: Stack) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there
    template = Template().from_image(f"127.0.0.1:{port}/nothing/here:1").run_cmd("true")
    began = time.monotonic()
    with pytest.raises(BuildException) as raised:
        Template.build(template, f"unhad-{unique()}", **BUILD_OPTS, **stack.opts)
    assert "unreachable" in str(raised.value) and time.monotonic() - began < 30


# busybox's tools that a template build's own scripts use (COPY, USER), besides a static bash.
# (Debian's busybox has no adduser: the build writes the default user into /etc/passwd itself.)
BUSYBOX = ["sh", "id", "mkdir", "chmod", "chown", "cp", "rm", "tar", "mktemp", "dirname", "cat", "ls",
           "env", "echo", "test", "whoami", "sync", "grep"]  # fmt: skip


def tiny_image(work: Path) -> str:
    """An OCI image (``layout:tag``) of a tiny root filesystem: no Python, no package manager, no shared
    library; root only."""
    layout, bundle = new_image(work)
    tiny_rootfs(bundle / "rootfs", BUSYBOX, user=False)
    umoci("repack", "--image", layout, str(bundle))
    umoci("config", "--image", layout, "--config.env=PATH=/bin", "--config.env=FROM_IMAGE=tiny")
    return layout


def test_a_registry_image_without_python(stack: Stack, start_registry, tmp_path: Path) -> None:
    registry = start_registry()
    name = f"{registry.host}/hutch/tiny:{unique()}"
    push(tiny_image(tmp_path / "image"), name)
    context = tmp_path / "context"
    context.mkdir()
    (context / "hello.txt").write_text("hello from the context\n")
    template = (
        Template(file_context_path=context)
        .from_image(name)
        .copy("hello.txt", "/opt/hello.txt")
        .run_cmd("echo ran as $(whoami) > /opt/ran", user="root")
    )
    built = f"tiny-{unique()}"
    logs: list[LogEntry] = []
    try:
        Template.build(template, built, on_build_logs=logs.append, **BUILD_OPTS, **stack.opts)
    except BuildException:
        print("\n".join(entry.message for entry in logs))
        raise
    assert any("Copying blob" in entry.message for entry in logs)
    sandbox = create(stack, built)
    try:
        result = sandbox.commands.run("cat /opt/hello.txt /opt/ran; whoami; echo $FROM_IMAGE")
        assert result.stdout == "hello from the context\nran as root\nuser\ntiny\n"
        assert sandbox.files.read("/opt/hello.txt") == "hello from the context\n"
        assert sandbox.commands.run("test -e /usr/bin/python3 || echo none").stdout == "none\n"
    finally:
        sandbox.kill()


def test_a_debian_image_without_python(stack: Stack) -> None:
    template = (
        Template().from_image("debian:bookworm-slim").run_cmd("cat /etc/debian_version > /opt/v", user="root")
    )
    built = f"slim-{unique()}"
    build(stack, template, built)
    sandbox = create(stack, built)
    try:
        assert sandbox.files.read("/opt/v").startswith("12.")
        result = sandbox.commands.run("command -v python3 || echo none; whoami; sudo -n true && echo sudo")
        assert result.stdout == "none\nuser\nsudo\n"
    finally:
        sandbox.kill()
