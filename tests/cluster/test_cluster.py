"""The cluster end to end, driven by the official SDK through the balancer with nothing but
``E2B_DOMAIN`` and an API key: sandboxes across nodes, commands, files, pause and resume, drain, a node
killed and back, API and proxy replicas restarted under load."""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from e2b import LogEntry, Sandbox, SandboxException, Template, Volume
from playwright.sync_api import expect
from tests.cli.conftest import clean_env, parse, run_hutch
from tests.cluster.harness import Cluster
from tests.playwright_chromium import chromium_apart, keep
from tests.stack import WORKER


def _create(cluster: Cluster, **options: object) -> Sandbox:
    sandbox = Sandbox.create(**cluster.opts, **options)
    cluster.seen.add(sandbox.sandbox_id)
    return sandbox


def _placed(cluster: Cluster, count: int) -> list[tuple[Sandbox, str]]:
    with ThreadPoolExecutor(4) as pool:
        sandboxes = list(pool.map(lambda _: _create(cluster), range(count)))
    return [(sandbox, cluster.node_of(sandbox.sandbox_id)) for sandbox in sandboxes]


def test_sandboxes_spread_over_the_nodes_and_work_on_each(cluster: Cluster) -> None:
    placed = _placed(cluster, 9)
    try:
        spread = Counter(node for _, node in placed)
        assert len(spread) == 3, spread
        assert max(spread.values()) <= 5, spread
        for sandbox, node in placed:
            result = sandbox.commands.run("echo $((6 * 7)) && hostname")
            assert result.stdout.split() == ["42", sandbox.sandbox_id], node
            sandbox.files.write("/home/user/note.txt", f"on {node}")
            assert sandbox.files.read("/home/user/note.txt") == f"on {node}"
    finally:
        for sandbox, _ in placed:
            sandbox.kill()


def test_pause_and_resume_on_a_node(cluster: Cluster) -> None:
    sandbox = _create(cluster)
    node = cluster.node_of(sandbox.sandbox_id)
    try:
        sandbox.files.write("/home/user/kept.txt", "kept")
        sandbox.pause()
        assert Sandbox.get_info(sandbox.sandbox_id, **cluster.opts).state.value == "paused"
        resumed = Sandbox.connect(sandbox.sandbox_id, **cluster.opts)
        assert resumed.files.read("/home/user/kept.txt") == "kept"
        assert resumed.commands.run("true").exit_code == 0
        assert cluster.node_of(sandbox.sandbox_id) == node
    finally:
        sandbox.kill()


def test_a_drained_node_takes_no_new_sandbox(cluster: Cluster) -> None:
    with cluster.admin() as admin:
        admin.post("/nodes/node0", json={"status": "draining"}).raise_for_status()
    try:
        assert cluster.nodes_status()["node0"] == "draining"
        placed = _placed(cluster, 6)
        try:
            assert "node0" not in {node for _, node in placed}
        finally:
            for sandbox, _ in placed:
                sandbox.kill()
    finally:
        with cluster.admin() as admin:
            admin.post("/nodes/node0", json={"status": "ready"}).raise_for_status()
    assert cluster.nodes_status()["node0"] == "ready"


def _gone(directory: Path, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while directory.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not directory.exists()


def _connect_at(cluster: Cluster, port: int, sandbox_id: str) -> tuple[int, str]:
    """Connect to the sandbox through the API replica at ``port`` itself: its status and node."""
    headers = {"X-API-Key": cluster.api_key}
    answer = httpx.post(
        f"http://127.0.0.1:{port}/sandboxes/{sandbox_id}/connect",
        json={"timeout": 300},
        headers=headers,
        timeout=120,
    )
    return answer.status_code, answer.json().get("clientID", answer.text)


def test_a_paused_sandbox_on_a_drained_node_resumes_on_another_when_its_files_can_move(
    cluster: Cluster,
) -> None:
    """Paused with its files only, a sandbox moves with them, deletions, links and holes kept; paused with
    its memory, it resumes where it is, its processes alive."""
    moving = _create(cluster, envs={"KEPT": "by the move"})
    node = cluster.node_of(moving.sandbox_id)
    staying = _create(cluster)
    try:
        moving.commands.run(
            "echo moved > /home/user/a.txt && ln -s /etc/shadow /home/user/link "
            "&& truncate -s 3G /home/user/sparse && rm /etc/debian_version",
            user="root",
        )
        with cluster.team() as team:
            answer = team.post(f"/sandboxes/{moving.sandbox_id}/pause", json={"memory": False})
            assert answer.status_code == 204, answer.text
        held = Sandbox.connect(staying.sandbox_id, **cluster.opts)  # not necessarily on the same node
        staying_node = cluster.node_of(staying.sandbox_id)
        held.commands.run("sleep 600", background=True)
        held.pause()
        with cluster.admin() as admin:
            for drained in {node, staying_node}:
                admin.post(f"/nodes/{drained}", json={"status": "draining"}).raise_for_status()
        try:
            # Resumed at once through both API replicas: one moves it, the other waits and finds it running.
            with ThreadPoolExecutor(2) as pool:
                answers = list(
                    pool.map(lambda port: _connect_at(cluster, port, moving.sandbox_id), cluster.api_ports)
                )
            assert sorted(status for status, _ in answers) == [200, 201], answers
            assert answers[0][1] == answers[1][1]
            resumed = Sandbox.connect(moving.sandbox_id, **cluster.opts)
            moved_to = cluster.node_of(moving.sandbox_id)
            assert moved_to == answers[0][1]
            assert moved_to not in {node, staying_node}
            assert resumed.files.read("/home/user/a.txt") == "moved\n"
            checks = resumed.commands.run(
                "readlink /home/user/link; stat -c '%s %b' /home/user/sparse; "
                "test -e /etc/debian_version || echo deleted; hostname; echo $KEPT"
            )
            link, sparse, deleted, hostname, env = checks.stdout.splitlines()
            size, blocks = sparse.split()
            assert (link, size, deleted) == ("/etc/shadow", str(3 << 30), "deleted")
            assert int(blocks) < 1024, "the hole was copied as zeros"
            assert (hostname, env) == (moving.sandbox_id, "by the move")
            source = next(n for n in cluster.nodes if n.node_id == node)
            assert _gone(source.data_dir / "sandboxes" / moving.sandbox_id), "the drained node kept it"

            Sandbox.connect(staying.sandbox_id, **cluster.opts)
            assert cluster.node_of(staying.sandbox_id) == staying_node
            assert "sleep 600" in held.commands.run("ps -eo args").stdout
        finally:
            with cluster.admin() as admin:
                for drained in {node, staying_node}:
                    admin.post(f"/nodes/{drained}", json={"status": "ready"}).raise_for_status()
    finally:
        moving.kill()
        staying.kill()


def test_the_node_api_and_traffic_listener_refuse_callers_without_the_cluster_key(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    for port in (5007, 5008):
        for headers in ({}, {"X-Hutch-Cluster-Key": "guess"}):
            answer = httpx.get(f"http://{node.address}:{port}/node/v1/sandboxes", headers=headers, timeout=5)
            assert answer.status_code == 401, (port, headers, answer.text)
    with cluster.team() as team:
        assert team.get("/nodes").status_code == 401  # a team's key opens no operator route


def test_the_cluster_key_never_reaches_a_sandbox(cluster: Cluster) -> None:
    """The proxy shows nodes the cluster key; the node strips it, and a client's own is dropped."""
    sandbox = _create(cluster)
    try:
        server = (
            "import http.server as h\n"
            "class E(h.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            "        body = str(self.headers).encode()\n"
            "        self.send_response(200); self.send_header('content-length', str(len(body)))\n"
            "        self.end_headers(); self.wfile.write(body)\n"
            "h.HTTPServer(('0.0.0.0', 8000), E).serve_forever()\n"
        )
        sandbox.files.write("/home/user/echo.py", server)
        sandbox.commands.run("python3 /home/user/echo.py", background=True)
        url = f"https://{sandbox.get_host(8000)}/"
        headers = {"X-Hutch-Cluster-Key": "forged", "E2b-Sandbox-Id": "someone-else"}
        deadline = time.monotonic() + 20
        while True:
            answer = httpx.get(url, headers=headers, timeout=10)
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        seen = answer.text.lower()
        assert "x-hutch-cluster-key" not in seen
        assert cluster.key_file.read_text().strip().lower() not in seen
    finally:
        sandbox.kill()


def test_a_killed_node_is_lost_within_10_s_and_takes_its_sandboxes_back(cluster: Cluster) -> None:
    placed = _placed(cluster, 6)
    victim = cluster.nodes[1]
    on_victim = [s for s, node in placed if node == victim.node_id]
    elsewhere = [s for s, node in placed if node != victim.node_id]
    if not on_victim:  # placement is random: make sure the victim holds one
        with cluster.admin() as admin:
            for other in ("node0", "node2"):
                admin.post(f"/nodes/{other}", json={"status": "draining"}).raise_for_status()
            try:
                on_victim.append(_create(cluster))
            finally:
                for other in ("node0", "node2"):
                    admin.post(f"/nodes/{other}", json={"status": "ready"}).raise_for_status()
    lost = on_victim[0]
    try:
        victim.process.signal(signal.SIGKILL)
        victim.process.popen.wait()  # type: ignore[union-attr]
        took = cluster.wait_nodes({victim.node_id: "lost"}, timeout_s=15)
        assert took <= 10, f"marked lost after {took:.1f} s"
        # Its sandbox answers with a clear error at once, never hangs.
        started = time.monotonic()
        with pytest.raises(SandboxException) as raised:
            lost.commands.run("true", request_timeout=30)
        assert time.monotonic() - started < 5
        assert "unavailable" in str(raised.value) or "503" in str(raised.value)
        with cluster.team() as team:
            info = team.get(f"/sandboxes/{lost.sandbox_id}")
            assert info.status_code == 503 and victim.node_id in info.json()["message"]
            listed = team.get("/v2/sandboxes", params={"state": "lost"}).json()
            assert lost.sandbox_id in {s["sandboxID"] for s in listed}
            default = team.get("/v2/sandboxes").json()  # what the SDK lists: no state it cannot parse
            assert lost.sandbox_id not in {s["sandboxID"] for s in default}
        # The other nodes' sandboxes go on, and new ones start there.
        for sandbox in elsewhere:
            assert sandbox.commands.run("echo ok").stdout == "ok\n"
        fresh = _create(cluster)
        assert cluster.node_of(fresh.sandbox_id) != victim.node_id
        fresh.kill()
        # Back: it takes its sandboxes again, as they were.
        victim.process.start()
        cluster.wait_nodes({victim.node_id: "ready"}, timeout_s=120)
        deadline = time.monotonic() + 20
        while True:
            try:
                assert lost.commands.run("echo back").stdout == "back\n"
                break
            except SandboxException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert Sandbox.get_info(lost.sandbox_id, **cluster.opts).state.value == "running"
    finally:
        for sandbox in [*on_victim, *elsewhere]:
            sandbox.kill()


@dataclass
class _Call:
    """One ``Sandbox.create`` of the load: when it was sent and answered, and the sandbox it answered."""

    sent: float
    answered: float | None = None
    sandbox_id: str | None = None


class _Load:
    """Sandboxes created, used and killed in a loop from a few threads, counting what failed how. Each
    create names its call in the sandbox's metadata, so a sandbox nobody was told of can be traced."""

    def __init__(self, cluster: Cluster, threads: int = 3) -> None:
        self.cluster = cluster
        self.stop = threading.Event()
        self.done = 0
        self.failures: list[str] = []
        self.live: set[str] = set()
        self.calls: dict[str, _Call] = {}
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while not self.stop.is_set():
            sandbox = None
            call = _Call(time.monotonic())
            try:
                name = secrets.token_hex(6)
                with self._lock:
                    self.calls[name] = call
                sandbox = _create(self.cluster, metadata={"call": name})
                call.answered, call.sandbox_id = time.monotonic(), sandbox.sandbox_id
                with self._lock:
                    self.live.add(sandbox.sandbox_id)
                assert sandbox.commands.run("echo ok").stdout == "ok\n"
                sandbox.kill()
                with self._lock:
                    self.live.discard(sandbox.sandbox_id)
                    self.done += 1
            except Exception as error:  # counted, and the sandbox killed, below
                with self._lock:
                    self.failures.append(f"{type(error).__name__}: {error}")
                if sandbox is not None:
                    try:
                        sandbox.kill()
                        with self._lock:
                            self.live.discard(sandbox.sandbox_id)
                    except Exception:
                        pass


def _retryable(failure: str) -> bool:
    """What a client may see of a replica that died under it: a broken connection, or a 502/503 of the
    balancer, and the SDK's own words for them (a command's stream cut short ends its generator early:
    the SDK lets that ``StopIteration`` out as it is)."""
    words = ("502", "503", "Server disconnected", "RemoteProtocolError", "ReadError", "ConnectError",
             "closed the connection", "stream", "Connection reset", "StopIteration")  # fmt: skip
    return any(word in failure for word in words)


def _restarted(cluster: Cluster, kind: str) -> tuple[int, list[str]]:
    replicas = cluster.apis if kind == "api" else cluster.proxies
    ports = cluster.api_ports if kind == "api" else cluster.proxy_ports
    killed: tuple[float, float] | None = None  # from the SIGKILL to the replica's end
    with _Load(cluster) as load:
        time.sleep(2)
        for replica, port, sig in zip(replicas, ports, (signal.SIGTERM, signal.SIGKILL), strict=True):
            signalled = time.monotonic()
            replica.signal(sig)
            replica.popen.wait(30)  # type: ignore[union-attr]
            if sig == signal.SIGKILL:
                killed = (signalled, time.monotonic())
            time.sleep(1)
            replica.start()
            _wait_healthy(f"http://127.0.0.1:{port}/health")
            time.sleep(2)
    assert load.done >= 5, load.failures
    assert not load.live, f"sandboxes the load could not kill: {load.live}"
    with cluster.team() as team:
        remaining = team.get("/v2/sandboxes").json()
        for sandbox in remaining:
            team.delete(f"/sandboxes/{sandbox['sandboxID']}")
    # A replica killed after it recorded a create never answered it; like any lost answer, the sandbox is
    # listed (to be found and killed) and ends at its timeout. The client either saw its create fail, or
    # (HTTP/2 through HAProxy, see the harness) was told its request was never processed and sent it
    # again: then the call was in flight when an API replica was killed, and it got another sandbox. The
    # graceful stop (SIGTERM) answers what it took in, so nothing may be left of it.
    names = [sandbox["metadata"].get("call", "") for sandbox in remaining]
    assert len(set(names)) == len(names), f"one create left more than one sandbox: {remaining}"
    for name, sandbox in zip(names, remaining, strict=True):
        call = load.calls.get(name)
        assert call is not None, f"a sandbox the load never asked for: {sandbox}"
        assert call.sandbox_id != sandbox["sandboxID"], f"answered, killed and still running: {sandbox}"
        if call.answered is not None:  # its create was sent again, and answered
            assert kind == "api" and killed is not None, f"a create sent twice: {sandbox}"
            assert call.sent <= killed[1] and call.answered >= killed[0], (
                f"a create sent twice, not in flight when the replica was killed: {sandbox}"
            )
    return load.done, load.failures


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 300:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come back")


def test_api_replicas_restarted_under_load_lose_nothing(cluster: Cluster) -> None:
    _done, failures = _restarted(cluster, "api")
    assert all(_retryable(f) for f in failures), failures
    assert len(failures) <= 3, failures


def test_proxy_replicas_restarted_under_load_lose_nothing(cluster: Cluster) -> None:
    _done, failures = _restarted(cluster, "proxy")
    assert all(_retryable(f) for f in failures), failures
    assert len(failures) <= 3, failures


def test_a_snapshot_keeps_the_files_and_starts_on_another_node(cluster: Cluster) -> None:
    with cluster.team() as team:
        found = team.get("/capabilities").json()
        assert found["cluster"] is True
        assert {e["snapshotModes"] == ["filesystem"] for e in found["engines"].values()} == {True}
    source = _create(cluster)
    node = cluster.node_of(source.sandbox_id)
    try:
        source.files.write("/home/user/state.txt", "kept by the snapshot")
        with cluster.team() as team:
            refused = team.post(f"/sandboxes/{source.sandbox_id}/snapshots", json={"memory": True})
            assert refused.status_code in (400, 501) and "files only" in refused.json()["message"]
        with cluster.team() as team:  # a fork of a crun sandbox boots over a copy of its files, on its node
            forked = team.post(f"/sandboxes/{source.sandbox_id}/fork", json={"count": 1})
            assert forked.status_code == 201, forked.text
            fork_id = forked.json()[0]["sandbox"]["sandboxID"]
            cluster.seen.add(fork_id)
            assert cluster.node_of(fork_id) == node
            fork = Sandbox.connect(fork_id, **cluster.opts)
            assert fork.files.read("/home/user/state.txt") == "kept by the snapshot"
            fork.kill()
        snapshot = source.create_snapshot()
        with cluster.admin() as admin:
            admin.post(f"/nodes/{node}", json={"status": "draining"}).raise_for_status()
        try:
            copy = _create(cluster, template=snapshot.snapshot_id)
            try:
                assert cluster.node_of(copy.sandbox_id) != node
                assert copy.files.read("/home/user/state.txt") == "kept by the snapshot"
            finally:
                copy.kill()
        finally:
            with cluster.admin() as admin:
                admin.post(f"/nodes/{node}", json={"status": "ready"}).raise_for_status()
    finally:
        source.kill()


def test_a_volume_lives_on_one_node_and_its_sandboxes_start_there(cluster: Cluster) -> None:
    volume = Volume.create(f"cluster-{secrets.token_hex(5)}", **cluster.opts)
    sandboxes: list[Sandbox] = []
    try:
        content = secrets.token_bytes(4 << 20)  # through the balancer, an API replica and the node's API
        volume.write_file("/shared/blob.bin", content, force=True)
        assert volume.read_file("/shared/blob.bin", format="bytes") == content
        sandboxes = [_create(cluster, volume_mounts={"/mnt/v": volume}) for _ in range(3)]
        assert len({cluster.node_of(sandbox.sandbox_id) for sandbox in sandboxes}) == 1
        sandboxes[0].files.write("/mnt/v/shared/note.txt", "from the first")
        assert sandboxes[2].files.read("/mnt/v/shared/note.txt") == "from the first"
        assert volume.read_file("/shared/note.txt") == "from the first"
        sandboxes[0].pause(mode="filesystem")
        node = cluster.node_of(sandboxes[0].sandbox_id)
        with cluster.admin() as admin:  # a sandbox with a volume does not move off a draining node
            admin.post(f"/nodes/{node}", json={"status": "draining"}).raise_for_status()
        try:
            resumed = Sandbox.connect(sandboxes[0].sandbox_id, **cluster.opts)
            assert cluster.node_of(resumed.sandbox_id) == node
            assert resumed.files.read("/mnt/v/shared/note.txt") == "from the first"
        finally:
            with cluster.admin() as admin:
                admin.post(f"/nodes/{node}", json={"status": "ready"}).raise_for_status()
    finally:
        for sandbox in sandboxes:
            sandbox.kill()
        assert Volume.destroy(volume.volume_id, **cluster.opts)


def test_the_operator_sees_and_drains_nodes_from_the_command_line(cluster: Cluster, tmp_path: Path) -> None:
    env = clean_env(
        E2B_API_URL=cluster.api_url, E2B_API_KEY=cluster.api_key,
        HUTCH_API__OPERATOR_KEY_FILE=str(cluster.operator_key_file),
    )  # fmt: skip
    listed = parse(run_hutch("node", "ls", "--json", env=env, cwd=tmp_path))
    assert sorted(node["nodeID"] for node in listed) == ["node0", "node1", "node2"]
    assert {node["status"] for node in listed} == {"ready"}
    human = run_hutch("node", "ls", env=env, cwd=tmp_path)
    assert human.returncode == 0 and "node2" in human.stdout and "ready" in human.stdout
    drained = run_hutch("node", "drain", "node2", env=env, cwd=tmp_path)
    assert drained.returncode == 0, drained.stderr
    try:
        status = parse(run_hutch("status", "--json", env=env, cwd=tmp_path))
        assert {node["nodeID"]: node["status"] for node in status["nodes"]}["node2"] == "draining"
        assert "3: 1 draining, 2 ready" in run_hutch("status", env=env, cwd=tmp_path).stdout
    finally:
        assert run_hutch("node", "undrain", "node2", env=env, cwd=tmp_path).returncode == 0
    assert cluster.nodes_status()["node2"] == "ready"
    unknown = run_hutch("node", "drain", "no-such-node", env=env, cwd=tmp_path)
    assert unknown.returncode == 1 and "404" in unknown.stderr
    without_key = run_hutch(
        "node", "ls", env={**env, "HUTCH_API__OPERATOR_KEY_FILE": str(tmp_path / "none")}, cwd=tmp_path
    )
    assert without_key.returncode == 1


def test_a_template_built_on_one_node_starts_on_the_others(cluster: Cluster, tmp_path: Path) -> None:
    """The build runs on a node (its log streamed back through an API replica), its COPY files uploaded
    through whichever replica the balancer picked; its sandboxes start on another node, which copies the
    template's layers first. The last node keeps layers of its own (the others share this machine's), so
    the sandbox goes to whichever side of that line the builder is not on."""
    name = f"clustered-{secrets.token_hex(3)}"
    (tmp_path / "hello.txt").write_text("copied into the cluster\n")
    template = (
        Template(file_context_path=str(tmp_path))
        .from_template("base")
        .copy("hello.txt", "/home/user/hello.txt")
        .run_cmd("echo built-in-the-cluster > /home/user/built.txt")
    )
    logs: list[LogEntry] = []
    Template.build(template, name, on_build_logs=logs.append, request_timeout=60, **cluster.opts)
    messages = [entry.message for entry in logs]
    builder = next(m.removeprefix("building on node ") for m in messages if m.startswith("building on node "))
    assert any("RUN echo built-in-the-cluster" in m for m in messages), messages
    built_on = cluster.nodes[int(builder.removeprefix("node"))]
    assert not list((built_on.data_dir / "template-files").glob("*/*")), "the node kept the COPY files"
    apart = next(node for node in cluster.nodes if node.own_layers is not None)
    target = "node0" if builder == apart.node_id else apart.node_id
    others = [node.node_id for node in cluster.nodes if node.node_id != target]
    with cluster.admin() as admin:
        for other in others:
            admin.post(f"/nodes/{other}", json={"status": "draining"}).raise_for_status()
    try:
        placed = [_create(cluster, template=name) for _ in range(2)]
        try:
            for sandbox in placed:
                assert cluster.node_of(sandbox.sandbox_id) == target != builder
                assert sandbox.files.read("/home/user/built.txt") == "built-in-the-cluster\n"
                assert sandbox.files.read("/home/user/hello.txt") == "copied into the cluster\n"
        finally:
            for sandbox in placed:
                sandbox.kill()
    finally:
        with cluster.admin() as admin:
            for other in others:
                admin.post(f"/nodes/{other}", json={"status": "ready"}).raise_for_status()
    log = cluster.nodes[int(target.removeprefix("node"))].process.log(20000)
    assert "copied layer" in log, "the target node did not copy the template's layers"


def test_the_operator_drains_a_node_from_the_dashboard(cluster: Cluster, tmp_path: Path) -> None:
    port = int(cluster.domain.rpartition(":")[2])
    host_ip, inside_ip = f"10.241.{100 + WORKER}.1", f"10.241.{100 + WORKER}.2"
    with chromium_apart(tmp_path, port, host_ip=host_ip, inside_ip=inside_ip) as apart:
        page = apart.browser.new_page(viewport={"width": 1400, "height": 700})
        page.set_default_timeout(15_000)
        page.goto(f"{cluster.api_url}/dashboard")
        page.fill("#api-key", cluster.api_key)
        page.click("button[type=submit]")
        page.get_by_role("link", name="Cluster").click()
        page.get_by_label("operator key").fill(cluster.operator_key_file.read_bytes().hex())
        page.get_by_role("button", name="Open").click()
        expect(page.locator("tr[data-node]")).to_have_count(3)
        row = page.locator("tr[data-node='node2']")
        expect(row.get_by_test_id("node-status")).to_have_text("ready")
        row.get_by_role("button", name="Drain").click()
        expect(row.get_by_test_id("node-status")).to_have_text("draining")
        assert cluster.nodes_status()["node2"] == "draining"
        keep(page, "cluster")
        row.get_by_role("button", name="Undrain").click()
        expect(row.get_by_test_id("node-status")).to_have_text("ready")
        assert cluster.nodes_status()["node2"] == "ready"
