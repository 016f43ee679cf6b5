"""envd's process service through the sync SDK: ``Sandbox.commands``.

Everything goes through the official ``e2b`` client; the few cases the public API cannot express (an
unspecified signal, SIGTERM, tags, a bad Start request) use the SDK's own generated RPC client.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import time
import uuid

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b import (
    AuthenticationException,
    CommandExitException,
    InvalidArgumentException,
    NotFoundException,
    SandboxException,
    TimeoutException,
)
from e2b.envd.process import process_pb
from e2b.sandbox_sync.commands import command as sync_command_module
from protobuf import Oneof

from tests.envd.host import alive, open_descriptors


def read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_until(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def listed_pids(sandbox) -> set[int]:
    return {p.pid for p in sandbox.commands.list()}


# -- foreground runs ------------------------------------------------------------------------------------


def test_run_stdout_and_stderr(sandbox):
    result = sandbox.commands.run("echo out; echo err >&2; echo out2")
    assert result.stdout == "out\nout2\n"
    assert result.stderr == "err\n"
    assert result.exit_code == 0
    assert result.error is None


def test_run_callbacks_receive_output(sandbox):
    stdout: list[str] = []
    stderr: list[str] = []
    result = sandbox.commands.run(
        "for i in 1 2 3; do echo o$i; echo e$i >&2; sleep 0.01; done",
        on_stdout=stdout.append,
        on_stderr=stderr.append,
    )
    assert "".join(stdout) == "o1\no2\no3\n" == result.stdout
    assert "".join(stderr) == "e1\ne2\ne3\n" == result.stderr


def test_nonzero_exit_raises_with_output(sandbox):
    with pytest.raises(CommandExitException) as info:
        sandbox.commands.run("echo partial; echo broken >&2; exit 3")
    err = info.value
    assert err.exit_code == 3
    assert err.stdout == "partial\n"
    assert err.stderr == "broken\n"
    assert err.error == "exit status 3"


def test_command_not_found_exit_code(sandbox):
    with pytest.raises(CommandExitException) as info:
        sandbox.commands.run("hutch-no-such-binary-xyz")
    assert info.value.exit_code == 127
    assert "hutch-no-such-binary-xyz" in info.value.stderr


def test_unicode_output(sandbox):
    text = "héllo ✓ 日本語 🎉"
    result = sandbox.commands.run(f"printf '%s\\n' '{text}'; printf '{text}' >&2")
    assert result.stdout == text + "\n"
    assert result.stderr == text


def test_code_point_split_across_writes(sandbox):
    # "✓" is e2 9c 93: the first byte goes out alone, the rest a moment later.
    result = sandbox.commands.run(r"printf '\xe2'; sleep 0.1; printf '\x9c\x93 done\n'")
    assert result.stdout == "✓ done\n"


def test_large_output_complete_and_in_order(sandbox):
    n = 700_000  # about 4.9 MB of text
    chunks: list[str] = []
    result = sandbox.commands.run(f"seq 1 {n}", on_stdout=chunks.append)
    expected = "".join(f"{i}\n" for i in range(1, n + 1))
    assert len(result.stdout) == len(expected)
    assert result.stdout == expected
    assert "".join(chunks) == expected
    assert len(chunks) > 1


def test_large_output_of_head_c(sandbox):
    result = sandbox.commands.run("head -c 5000000 /dev/zero | tr '\\0' 'x'; echo; echo tail >&2")
    assert len(result.stdout) == 5_000_001
    assert result.stdout.count("x") == 5_000_000
    assert result.stderr == "tail\n"


def test_unread_output_is_held_back_not_buffered(sandbox, envd):
    # A client that does not read makes the process wait on its pipe; envd does not hoard the output.
    size = 100_000_000
    before = rss_kb(envd.process.pid)
    handle = sandbox.commands.run(
        f"head -c {size} /dev/zero; echo end >&2", background=True, timeout=30, retain_output=False
    )
    time.sleep(0.7)
    assert rss_kb(envd.process.pid) - before < 50_000
    assert handle.pid in listed_pids(sandbox)  # still blocked writing
    received = 0
    stderr = ""
    for stdout, err, _ in handle:
        received += len(stdout or "")
        stderr += err or ""
    assert received == size
    assert stderr == "end\n"


def test_disconnect_releases_held_back_output(sandbox, workdir):
    handle = sandbox.commands.run(
        "head -c 50000000 /dev/zero; touch written; read x; echo after-$x",
        background=True,
        stdin=True,
        cwd=workdir,
        timeout=30,
    )
    time.sleep(0.3)  # the unread output holds the process back
    assert not os.path.exists(os.path.join(workdir, "written"))
    handle.disconnect()
    # With nobody listening the output is dropped, so the process gets through it.
    assert wait_until(lambda: os.path.exists(os.path.join(workdir, "written")), timeout=10)
    again = sandbox.commands.connect(handle.pid, timeout=10)
    again.send_stdin("1\n")
    assert again.wait().stdout == "after-1\n"


def test_output_of_fast_exit_is_not_lost(sandbox):
    # Many short commands: output written just before exit must always come before the end event.
    for i in range(20):
        assert sandbox.commands.run(f"echo run-{i}").stdout == f"run-{i}\n"


# -- background, wait, kill -----------------------------------------------------------------------------


def test_background_then_wait(sandbox):
    handle = sandbox.commands.run("echo start; sleep 0.2; echo end", background=True)
    assert handle.pid > 0
    result = handle.wait()
    assert result.stdout == "start\nend\n"
    assert result.exit_code == 0


def test_background_wait_nonzero_exit(sandbox):
    handle = sandbox.commands.run("echo oops >&2; exit 5", background=True)
    with pytest.raises(CommandExitException) as info:
        handle.wait()
    assert info.value.exit_code == 5
    assert info.value.stderr == "oops\n"


def test_background_iterate_handle(sandbox):
    handle = sandbox.commands.run("echo a; echo b >&2", background=True)
    seen = {"stdout": "", "stderr": ""}
    for stdout, stderr, _ in handle:
        if stdout is not None:
            seen["stdout"] += stdout
        if stderr is not None:
            seen["stderr"] += stderr
    assert seen == {"stdout": "a\n", "stderr": "b\n"}


def test_handle_kill(sandbox):
    handle = sandbox.commands.run("echo ready; sleep 30", background=True)
    assert handle.pid in listed_pids(sandbox)
    assert next(iter(handle)) == ("ready\n", None, None)
    assert handle.kill() is True
    started = time.monotonic()
    with pytest.raises(CommandExitException) as info:
        handle.wait()
    assert time.monotonic() - started < 5
    assert info.value.exit_code == -1
    assert info.value.error == "signal: killed"
    assert info.value.stdout == "ready\n"
    assert wait_until(lambda: handle.pid not in listed_pids(sandbox))
    assert not alive(handle.pid)


def test_kill_kills_the_whole_group(sandbox, workdir):
    handle = sandbox.commands.run(f"sleep 30 & echo $! > {workdir}/child; wait", background=True)
    child_file = os.path.join(workdir, "child")
    assert wait_until(lambda: read_text(child_file).strip())
    child = int(read_text(child_file))
    assert alive(child)
    assert sandbox.commands.kill(handle.pid) is True
    with pytest.raises(CommandExitException):
        handle.wait()
    assert wait_until(lambda: not alive(child))


def test_what_a_command_leaves_running_may_still_write(sandbox, workdir, envd):
    # gtk-launch and `cmd &` leave processes holding the command's pipes: after the command ends, what they
    # write is dropped, and they are not killed by SIGPIPE. The pipes close with them.
    def pipes() -> int:
        return sum("pipe:" in fd for fd in open_descriptors(envd.process.pid))

    before = pipes()
    done = os.path.join(workdir, "done")
    script = f"(sleep 0.5; seq 100000 >&2; echo late; touch {done}) & echo started"
    assert sandbox.commands.run(script).stdout == "started\n"
    assert wait_until(lambda: os.path.exists(done), timeout=10)
    assert wait_until(lambda: pipes() == before, timeout=5)


def test_commands_kill_live_and_unknown(sandbox):
    handle = sandbox.commands.run("sleep 30", background=True)
    assert sandbox.commands.kill(handle.pid) is True
    with pytest.raises(CommandExitException):
        handle.wait()
    # Gone now: envd answers not_found, which the SDK reports as False.
    assert sandbox.commands.kill(handle.pid) is False
    assert sandbox.commands.kill(4_000_000) is False


# -- stdin ----------------------------------------------------------------------------------------------


def test_send_stdin_and_close(sandbox):
    handle = sandbox.commands.run("cat", background=True, stdin=True)
    sandbox.commands.send_stdin(handle.pid, "hello\n")
    handle.send_stdin(b"bytes ")
    handle.send_stdin("ünï\n")
    handle.close_stdin()
    result = handle.wait()
    assert result.stdout == "hello\nbytes ünï\n"


def test_close_stdin_via_commands(sandbox):
    handle = sandbox.commands.run("wc -c", background=True, stdin=True)
    sandbox.commands.send_stdin(handle.pid, "12345")
    sandbox.commands.close_stdin(handle.pid)
    assert handle.wait().stdout.strip() == "5"


def test_send_stdin_larger_than_the_pipe(sandbox):
    handle = sandbox.commands.run("sleep 0.3; sha256sum", background=True, stdin=True)
    data = os.urandom(3_000_000)
    handle.send_stdin(data)  # returns once the slow reader has taken it all
    handle.close_stdin()
    assert handle.wait().stdout.split()[0] == hashlib.sha256(data).hexdigest()


def test_stdin_is_dev_null_by_default(sandbox):
    # Without stdin=True the command reads EOF at once instead of hanging.
    result = sandbox.commands.run("cat; echo after", timeout=5)
    assert result.stdout == "after\n"


def test_send_stdin_without_stdin_fails(sandbox):
    handle = sandbox.commands.run("sleep 30", background=True)
    try:
        with pytest.raises(SandboxException):
            sandbox.commands.send_stdin(handle.pid, "x")
    finally:
        handle.kill()


def test_send_stdin_after_close_fails(sandbox):
    handle = sandbox.commands.run("sleep 30", background=True, stdin=True)
    try:
        handle.close_stdin()
        with pytest.raises(SandboxException):
            handle.send_stdin("late")
    finally:
        handle.kill()


def test_send_stdin_unknown_pid(sandbox):
    with pytest.raises(NotFoundException):
        sandbox.commands.send_stdin(4_000_000, "x")


def test_stream_input(sandbox):
    handle = sandbox.commands.run("cat", background=True, stdin=True)
    sandbox.commands.stream_input(handle.pid, ["a", b"b", "c\n", "ü"])
    sandbox.commands.close_stdin(handle.pid)
    assert handle.wait().stdout == "abc\nü"


def test_stream_input_large(sandbox):
    handle = sandbox.commands.run("sha256sum", background=True, stdin=True)
    chunks = [bytes([i]) * 100_000 for i in range(20)]
    sandbox.commands.stream_input(handle.pid, iter(chunks))
    handle.close_stdin()
    assert handle.wait().stdout.split()[0] == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_stream_input_unknown_pid(sandbox):
    with pytest.raises(NotFoundException):
        sandbox.commands.stream_input(4_000_000, ["x"])


# -- list and connect -----------------------------------------------------------------------------------


def test_list_shows_config_as_started(sandbox, workdir):
    cmd = f"sleep 30 # {uuid.uuid4().hex}"
    handle = sandbox.commands.run(cmd, background=True, envs={"LIST_VAR": "v1"}, cwd=workdir)
    try:
        (info,) = [p for p in sandbox.commands.list() if p.pid == handle.pid]
        assert info.cmd == "/bin/bash"
        assert info.args == ["-l", "-c", cmd]
        assert info.envs == {"LIST_VAR": "v1"}
        assert info.cwd == workdir
        assert info.tag is None
    finally:
        handle.kill()


def test_list_without_cwd_or_envs(sandbox):
    handle = sandbox.commands.run("sleep 30", background=True)
    try:
        (info,) = [p for p in sandbox.commands.list() if p.pid == handle.pid]
        assert info.cwd is None
        assert info.envs == {}
    finally:
        handle.kill()


def test_list_drops_finished_processes(sandbox):
    handle = sandbox.commands.run("true", background=True)
    handle.wait()
    assert wait_until(lambda: handle.pid not in listed_pids(sandbox))


def test_connect_two_subscribers(sandbox):
    handle = sandbox.commands.run("read line; echo got-$line; echo warn >&2", background=True, stdin=True)
    other = sandbox.commands.connect(handle.pid)
    assert other.pid == handle.pid
    handle.send_stdin("x1\n")
    first = handle.wait()
    second = other.wait()
    assert first.stdout == second.stdout == "got-x1\n"
    assert first.stderr == second.stderr == "warn\n"


def test_connect_sees_only_later_output(sandbox):
    handle = sandbox.commands.run("echo before; read x; echo after", background=True, stdin=True)
    # Let "before" be produced (and consumed by the first stream) before connecting.
    first_chunk = next(iter(handle))
    assert first_chunk[0] == "before\n"
    other = sandbox.commands.connect(handle.pid)
    handle.send_stdin("\n")
    assert other.wait().stdout == "after\n"
    assert handle.wait().stdout == "before\nafter\n"


def test_connect_unknown_pid(sandbox):
    with pytest.raises(NotFoundException):
        sandbox.commands.connect(4_000_000)


def test_connect_after_exit(sandbox):
    handle = sandbox.commands.run("exit 4", background=True)
    with pytest.raises(CommandExitException):
        handle.wait()
    # A just-finished process still answers a late connect with its end.
    with pytest.raises(CommandExitException) as info:
        sandbox.commands.connect(handle.pid).wait()
    assert info.value.exit_code == 4


def test_process_survives_disconnect(sandbox):
    handle = sandbox.commands.run("read line; echo got-$line", background=True, stdin=True)
    pid = handle.pid
    handle.disconnect()
    time.sleep(0.2)  # give envd a moment to notice the closed stream
    assert pid in listed_pids(sandbox)
    assert alive(pid)
    again = sandbox.commands.connect(pid)
    again.send_stdin("back\n")
    assert again.wait().stdout == "got-back\n"


def test_process_survives_disconnect_while_writing(sandbox):
    handle = sandbox.commands.run(
        "for i in $(seq 1 40); do echo $i; sleep 0.02; done; echo done", background=True
    )
    handle.disconnect()
    again = sandbox.commands.connect(handle.pid)
    result = again.wait()
    assert result.stdout.endswith("done\n")


# -- environment, cwd, user -----------------------------------------------------------------------------


def test_envs_per_command_and_sandbox_level(sandbox):
    result = sandbox.commands.run('echo "$FOO|$HUTCH_SANDBOX_VAR"', envs={"FOO": "bar baz"})
    assert result.stdout == "bar baz|sandbox-level\n"


def test_request_envs_override_sandbox_envs(sandbox):
    result = sandbox.commands.run("echo $HUTCH_SANDBOX_VAR", envs={"HUTCH_SANDBOX_VAR": "request"})
    assert result.stdout == "request\n"


def test_envs_do_not_leak_between_commands(sandbox):
    sandbox.commands.run("true", envs={"ONLY_ONCE": "1"})
    assert sandbox.commands.run('echo "[${ONLY_ONCE:-unset}]"').stdout == "[unset]\n"


def test_user_environment(sandbox, envd):
    result = sandbox.commands.run('echo "$HOME|$USER|$LOGNAME"; echo "$PATH"')
    home, path = result.stdout.splitlines()
    assert home == f"{envd.home}|{envd.user}|{envd.user}"
    assert "/usr/bin" in path.split(":")


def test_environment_is_exactly_the_defined_one(sandbox, envd):
    # No login shell in between: the environment is what envd builds, nothing of its own leaks in.
    events = sandbox.commands._rpc.start(
        process_pb.StartRequest(
            process=process_pb.ProcessConfig(cmd="/usr/bin/env", envs={"REQ": "r"}), stdin=False
        )
    )
    out = b""
    for event in events:
        if event.event.event.field == "data":
            out += event.event.event.value.output.value
    env = dict(line.split("=", 1) for line in out.decode().splitlines())
    assert env.pop("PATH")
    assert env == {
        "HOME": envd.home,
        "USER": envd.user,
        "LOGNAME": envd.user,
        "HUTCH_SANDBOX_VAR": "sandbox-level",
        "REQ": "r",
    }


def test_cwd(sandbox, workdir):
    assert sandbox.commands.run("pwd", cwd=workdir).stdout == f"{workdir}\n"


def test_relative_cwd_is_under_home(sandbox, workdir, envd):
    relative = os.path.relpath(workdir, envd.home)
    assert sandbox.commands.run("pwd", cwd=relative).stdout == f"{workdir}\n"


def test_default_cwd_is_home(sandbox, envd):
    assert sandbox.commands.run("pwd").stdout == f"{envd.home}\n"


def test_missing_cwd(sandbox, workdir):
    with pytest.raises(InvalidArgumentException):
        sandbox.commands.run("pwd", cwd=os.path.join(workdir, "missing"))


def test_default_user(sandbox, test_user):
    name, _ = test_user
    entry = pwd.getpwnam(name)
    result = sandbox.commands.run("whoami; id -u; id -g")
    assert result.stdout.split() == [name, str(entry.pw_uid), str(entry.pw_gid)]


def test_root_user(sandbox):
    result = sandbox.commands.run('whoami; echo "$HOME"', user="root")
    assert result.stdout == f"root\n{pwd.getpwnam('root').pw_dir}\n"


def test_unknown_user(sandbox):
    with pytest.raises(AuthenticationException):
        sandbox.commands.run("whoami", user="hutch-no-such-user")


def test_files_belong_to_the_user(sandbox, workdir, test_user):
    sandbox.commands.run("echo data > by-default", cwd=workdir)
    sandbox.commands.run("echo data > by-root", cwd=workdir, user="root")
    uid = pwd.getpwnam(test_user[0]).pw_uid
    assert os.stat(os.path.join(workdir, "by-default")).st_uid == uid
    assert os.stat(os.path.join(workdir, "by-root")).st_uid == 0


# -- timeouts and keepalive -----------------------------------------------------------------------------


def test_timeout_kills_the_process(sandbox, workdir):
    started = time.monotonic()
    with pytest.raises(TimeoutException):
        sandbox.commands.run("echo $$ > pid; sleep 10 & echo $! > child; wait", cwd=workdir, timeout=1)
    assert time.monotonic() - started < 4
    pid = int(read_text(os.path.join(workdir, "pid")))
    child = int(read_text(os.path.join(workdir, "child")))
    assert wait_until(lambda: not alive(pid) and not alive(child))
    assert wait_until(lambda: pid not in listed_pids(sandbox))


def test_background_timeout_kills_the_process(sandbox):
    handle = sandbox.commands.run("sleep 10", background=True, timeout=1)
    started = time.monotonic()
    with pytest.raises(TimeoutException):
        handle.wait()
    assert time.monotonic() - started < 4
    assert wait_until(lambda: handle.pid not in listed_pids(sandbox))
    assert not alive(handle.pid)


def test_timeout_seen_by_a_connected_stream(sandbox):
    handle = sandbox.commands.run("echo hi; sleep 10", background=True, timeout=1)
    other = sandbox.commands.connect(handle.pid, timeout=10)
    with pytest.raises(TimeoutException):
        handle.wait()
    # For a Connect stream, whose own deadline has not passed, the kill is an ordinary end.
    with pytest.raises(CommandExitException) as info:
        other.wait()
    assert info.value.exit_code == -1
    assert info.value.error == "signal: killed"


def test_connect_stream_deadline_does_not_kill(sandbox):
    handle = sandbox.commands.run("sleep 30", background=True)
    try:
        other = sandbox.commands.connect(handle.pid, timeout=0.5)
        with pytest.raises(TimeoutException):
            other.wait()
        assert alive(handle.pid)
        assert handle.pid in listed_pids(sandbox)
    finally:
        handle.kill()


def test_timeout_zero_means_unlimited(sandbox):
    assert sandbox.commands.run("sleep 0.2; echo ok", timeout=0).stdout == "ok\n"


def test_keepalive_is_tolerated(sandbox, monkeypatch):
    monkeypatch.setattr(sync_command_module, "KEEPALIVE_PING_INTERVAL_SEC", 1)
    handle = sandbox.commands.run("sleep 2.3; echo done", background=True)
    kinds: list[str] = []

    def counting(events):
        for event in events:
            kinds.append(event.event.event.field)
            yield event

    handle._events = counting(handle._events)
    assert handle.wait().stdout == "done\n"
    assert kinds.count("keepalive") >= 2
    assert kinds[-1] == "end"


def test_no_descriptors_leak(sandbox, envd):
    def open_files() -> list[str]:
        return open_descriptors(envd.process.pid)

    sandbox.commands.run("true")
    before = open_files()
    for _ in range(5):
        sandbox.commands.run("echo hi")
        handle = sandbox.commands.run("cat", background=True, stdin=True)
        handle.send_stdin("x")
        handle.close_stdin()
        handle.wait()
        handle = sandbox.commands.run("sleep 10", background=True, stdin=True)
        handle.kill()
        with pytest.raises(CommandExitException):
            handle.wait()
        with pytest.raises(TimeoutException):
            sandbox.commands.run("sleep 10", timeout=0.3)
        handle = sandbox.commands.run("sleep 0.1", background=True)
        handle.disconnect()
    time.sleep(0.3)  # the last background command ends
    assert wait_until(lambda: open_files() == before)


# -- RPCs the public API does not reach, through the SDK's own client -----------------------------------


def _selector(pid: int) -> process_pb.ProcessSelector:
    return process_pb.ProcessSelector(selector=Oneof("pid", pid))


def test_unspecified_signal_is_unimplemented(sandbox):
    handle = sandbox.commands.run("sleep 30", background=True)
    try:
        with pytest.raises(ConnectError) as info:
            sandbox.commands._rpc.send_signal(
                process_pb.SendSignalRequest(
                    process=_selector(handle.pid), signal=process_pb.Signal.UNSPECIFIED
                )
            )
        assert info.value.code == Code.UNIMPLEMENTED
        assert alive(handle.pid)
    finally:
        handle.kill()


def test_sigterm(sandbox):
    handle = sandbox.commands.run("sleep 30", background=True)
    sandbox.commands._rpc.send_signal(
        process_pb.SendSignalRequest(process=_selector(handle.pid), signal=process_pb.Signal.SIGTERM)
    )
    with pytest.raises(CommandExitException) as info:
        handle.wait()
    assert info.value.exit_code == -1
    assert info.value.error == "signal: terminated"


def test_tagged_process_list_and_connect_by_tag(sandbox):
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    events = sandbox.commands._rpc.start(
        process_pb.StartRequest(
            process=process_pb.ProcessConfig(cmd="/bin/sh", args=["-c", "read x; echo tagged-$x"]),
            tag=tag,
            stdin=True,
        )
    )
    pid = next(events).event.event.value.pid
    (info,) = [p for p in sandbox.commands.list() if p.pid == pid]
    assert info.tag == tag
    assert info.cmd == "/bin/sh"
    other = sandbox.commands._rpc.connect(
        process_pb.ConnectRequest(process=process_pb.ProcessSelector(selector=Oneof("tag", tag)))
    )
    assert next(other).event.event.value.pid == pid
    sandbox.commands.send_stdin(pid, "y\n")
    out = b""
    for event in other:
        if event.event.event.field == "data":
            out += event.event.event.value.output.value
        if event.event.event.field == "end":
            assert event.event.event.value.exit_code == 0
    assert out == b"tagged-y\n"
    events.close()


def test_start_with_empty_cmd_is_invalid(sandbox):
    with pytest.raises(ConnectError) as info:
        next(sandbox.commands._rpc.start(process_pb.StartRequest(process=process_pb.ProcessConfig(cmd=""))))
    assert info.value.code == Code.INVALID_ARGUMENT


def test_start_missing_executable_is_invalid(sandbox):
    with pytest.raises(ConnectError) as info:
        next(
            sandbox.commands._rpc.start(
                process_pb.StartRequest(process=process_pb.ProcessConfig(cmd="/no/such/binary"))
            )
        )
    assert info.value.code == Code.INVALID_ARGUMENT


def test_start_runs_cmd_directly_with_args(sandbox):
    events = sandbox.commands._rpc.start(
        process_pb.StartRequest(
            process=process_pb.ProcessConfig(cmd="printf", args=["%s|", "a b", "$HOME", "*"]),
            stdin=False,
        )
    )
    out = b""
    for event in events:
        if event.event.event.field == "data":
            out += event.event.event.value.output.value
    assert out == b"a b|$HOME|*|"
