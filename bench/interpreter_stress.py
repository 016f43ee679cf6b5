"""Stress the code interpreter: contexts executing side by side, with timeouts, interrupts and restarts.

Each of ``--contexts`` threads (default 8) owns one Python context and makes ``--executions`` calls in it
(default 500) through the official ``e2b_code_interpreter`` SDK, drawn at random (``--seed``) from:

* ``state``: prints a unique token and returns a counter kept in the kernel, both checked exactly: a
  missing, repeated or foreign output, or a counter that skipped or repeated, is a lost output;
* ``env``: the same token as a per-call variable (``envs=``); it must be gone again for the next call;
* ``error``: raises; that error and nothing else comes back;
* ``flood``: prints thousands of lines quickly (a message each, or one large write): all of them, in order;
* ``timeout``: runs past the call's ``timeout=``: the SDK raises ``TimeoutException``, the server interrupts
  the cell, and the next call sees the context's state;
* ``near_timeout``: ends about when the call's timeout expires, so the interrupt races the cell's end;
  either outcome is fine, but a cell that answers answers in full;
* ``cancel`` / ``cancel_late``: the client stops reading at the cell's first output, the cell still running
  or already ending (the SDK has no interrupt call: a client that goes away is what interrupts a cell);
* ``restart``: ``restart_code_context``; the state is gone afterwards;
* ``restart_busy``: the same while a cell runs in the context; that cell ends with ``ContextRestarting``.

Every call has a deadline, the moment the SDK gives up on it plus ``--margin``: a call that neither answers
nor raises by then is a hang, and so is a quick cell that times out (the server sat on it for its whole
timeout). A hang is recorded with its context, its cell and what the server logged meanwhile. The summary
gives executions, expected timeouts, interrupts, restarts, hangs, lost outputs and other failures, and the
latency of the quick cells; a hang, a lost output or a failure makes the exit status 1.

The server is ``python -m hutch.interpreter`` on loopback (default), the built ``code-interpreter-v1``
image's server in a chroot of the image (``--image``, as root), or any server (``--url``). The SDK's
transport has been seen to give up at twice a call's ``timeout=``; the factor is measured first and applied
to the deadlines and to ``near_timeout``.

``python bench/interpreter_stress.py [--quick] [--contexts N] [--executions N] [--image | --url URL]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from e2b import TimeoutException
from e2b_code_interpreter import Context, Execution, Sandbox
from interpreter_bench import sandbox_for
from measure import free_port
from tests.interpreter import image

from hutch.templates import code_interpreter

SANDBOX_ID = "stresssandbox"
QUICK_EXECUTIONS = 50
QUICK_TIMEOUT_S = 20.0
RESTART_TIMEOUT_S = 60.0
# the share of each kind of call, in percent
MIX = {
    "state": 44,
    "env": 8,
    "error": 4,
    "flood": 6,
    "timeout": 8,
    "near_timeout": 8,
    "cancel": 8,
    "cancel_late": 8,
    "restart": 3,
    "restart_busy": 3,
}
QUICK_KINDS = ("state", "env", "error")
INIT = "import os, time\ncounter = 0"
SPIN = "while True:\n    time.sleep(0.01)"


class Cancelled(Exception):
    """Raised from an output callback to make the SDK drop the call."""


@dataclass
class Problem:
    kind: str  # "hang", "lost" or "failure"
    context: int
    index: int
    cell: str
    code: str
    detail: str
    log: list[str] = field(default_factory=list)


@dataclass
class Tally:
    calls: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, kind: str, outcome: str, elapsed_s: float) -> None:
        with self.lock:
            self.calls[kind] += 1
            self.outcomes[f"{kind}: {outcome}"] += 1
            self.latency_ms.setdefault(kind, []).append(elapsed_s * 1000)

    def add(self, problem: Problem) -> None:
        with self.lock:
            self.problems.append(problem)
        print(f"  {problem.kind.upper()} context {problem.context} call {problem.index} ({problem.cell}): "
              f"{problem.detail}", file=sys.stderr, flush=True)  # fmt: skip


class ServerLog:
    """The server's output file: what it logged while a call ran."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path else 0

    def since(self, offset: int, lines: int = 40) -> list[str]:
        if not self.path:
            return []
        with self.path.open("rb") as file:
            file.seek(offset)
            text = file.read().decode(errors="replace")
        # outside a sandbox, every call logs that no envd answered
        return [line for line in text.splitlines() if "no sandbox-level variables" not in line][-lines:]


def bounded(call: Callable[[], Any], deadline_s: float) -> tuple[str, Any]:
    """``call()`` in a thread of its own: ("ok", value), ("raised", exception) or ("hang", None) when it is
    still running after ``deadline_s`` (the thread is left behind)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    if not done.wait(deadline_s):
        return "hang", None
    return ("raised", box["error"]) if "error" in box else ("ok", box["value"])


def describe(execution: Execution) -> str:
    error = execution.error
    parts = [f"stdout={execution.logs.stdout!r}"[:300], f"text={execution.text!r}"]
    if error is not None:
        parts.append(f"error={error.name}: {error.value}"[:300])
    return " ".join(parts)


class Worker:
    """One context and the calls made in it, one after the other."""

    def __init__(
        self,
        sandbox: Sandbox,
        number: int,
        args: argparse.Namespace,
        tally: Tally,
        log: ServerLog,
        factor: float,
    ):
        self.sandbox = sandbox
        self.factor = factor  # a call times out after this many times its timeout
        self.number = number
        self.args = args
        self.tally = tally
        self.log = log
        self.random = random.Random(f"{args.seed}-{number}")
        self.context: Context | None = None
        self.counter = 0
        self.broken = False

    def run(self) -> None:
        outcome, value = bounded(self.sandbox.create_code_context, RESTART_TIMEOUT_S)
        if outcome != "ok":
            self.problem("failure", -1, "create", "", f"create_code_context: {outcome} {value!r}")
            return
        self.context = value
        if not self.init(-1):
            return
        kinds, weights = zip(*MIX.items(), strict=True)
        for index in range(self.args.executions):
            if self.broken:
                return
            kind = self.random.choices(kinds, weights)[0]
            getattr(self, kind)(index)
        bounded(lambda: self.sandbox.remove_code_context(self.context), RESTART_TIMEOUT_S)

    def token(self, index: int) -> str:
        return f"tok-{self.number}-{index}-{self.random.randrange(10**9)}"

    def call(self, kind: str, index: int, code: str, timeout: float, **options: Any) -> tuple[str, Any, int]:
        """One ``run_code``, bounded; a hang is recorded here. Also returns the log offset at the start."""
        mark = self.log.mark()
        started = time.monotonic()
        outcome, value = bounded(
            lambda: self.sandbox.run_code(code, context=self.context, timeout=timeout, **options),
            self.deadline(timeout),
        )
        self.tally.count(
            kind, outcome if outcome != "raised" else type(value).__name__, time.monotonic() - started
        )
        if outcome == "hang":
            self.problem("hang", index, kind, code, f"no answer within {self.deadline(timeout)} s", mark)
            self.recover(index)
        return outcome, value, mark

    def deadline(self, timeout: float) -> float:
        return round(timeout * self.factor + self.args.margin, 2)

    def problem(
        self, kind: str, index: int, cell: str, code: str, detail: str, mark: int | None = None
    ) -> None:
        log = self.log.since(mark) if mark is not None else []
        self.tally.add(Problem(kind, self.number, index, cell, code, detail, log))

    def init(self, index: int) -> bool:
        outcome, value, mark = self.call("init", index, INIT, QUICK_TIMEOUT_S)
        if outcome != "ok" or value.error is not None:
            if outcome != "hang":
                self.problem("failure", index, "init", INIT, f"{outcome}: {value!r}", mark)
            self.broken = True
            return False
        self.counter = 0
        return True

    def recover(self, index: int) -> None:
        """After a hang: a restart, and the state set up again; the worker stops if even that fails."""
        outcome, value = bounded(lambda: self.sandbox.restart_code_context(self.context), RESTART_TIMEOUT_S)
        if outcome != "ok":
            self.problem("failure", index, "recover", "", f"restart after a hang: {outcome} {value!r}")
            self.broken = True
            return
        self.init(index)

    def expect_quick(self, kind: str, index: int, code: str, check: Callable[[Execution], str | None],
                     **options: Any) -> bool:  # fmt: skip
        """A quick cell: it must answer, and ``check`` must find nothing wrong with its answer."""
        outcome, value, mark = self.call(kind, index, code, QUICK_TIMEOUT_S, **options)
        if outcome == "hang":
            return False
        if outcome == "raised":
            if isinstance(value, TimeoutException):
                detail = f"a quick cell timed out (timeout={QUICK_TIMEOUT_S} s)"
                self.problem("hang", index, kind, code, detail, mark)
                self.recover(index)
            else:
                self.problem("failure", index, kind, code, f"raised {value!r}", mark)
            return False
        wrong = check(value)
        if wrong:
            self.problem("lost", index, kind, code, f"{wrong}; got {describe(value)}", mark)
            self.resync(index)
            return False
        return True

    def resync(self, index: int) -> None:
        """The kernel's counter, after an answer that was wrong."""
        outcome, value, _ = self.call("resync", index, "counter", QUICK_TIMEOUT_S)
        if outcome == "ok" and value.error is None and value.text and value.text.isdigit():
            self.counter = int(value.text)
        elif outcome != "hang":
            self.recover(index)

    def state(self, index: int, envs: dict[str, str] | None = None) -> None:
        token = self.token(index)
        variable = "os.environ.get('STRESS_VAR')"
        code = f"counter += 1\nprint({token!r})\n(counter, {index}, {variable})"
        expected_var = repr(envs["STRESS_VAR"]) if envs else "None"

        def check(execution: Execution) -> str | None:
            expected = f"({self.counter + 1}, {index}, {expected_var})"
            # one print may come as more than one message: its text, then its newline
            stdout = "".join(execution.logs.stdout)
            if execution.error is not None or stdout != token + "\n" or execution.logs.stderr:
                return f"expected stdout {token!r} and no error"
            if execution.text != expected:
                return f"expected {expected}"
            return None

        if self.expect_quick("env" if envs else "state", index, code, check, envs=envs):
            self.counter += 1

    def env(self, index: int) -> None:
        self.state(index, envs={"STRESS_VAR": self.token(index)})

    def error(self, index: int) -> None:
        token = self.token(index)

        def check(execution: Execution) -> str | None:
            error = execution.error
            if error is None or error.name != "ValueError" or error.value != token or execution.logs.stdout:
                return f"expected ValueError({token!r}) alone"
            return None

        self.expect_quick("error", index, f"raise ValueError({token!r})", check)

    def flood(self, index: int) -> None:
        lines = self.random.randrange(1000, 4000)
        if self.random.random() < 0.5:
            code = f"for n in range({lines}):\n    print(n, flush=True)"
        else:
            code = f"print('\\n'.join(map(str, range({lines * 10}))))"
            lines *= 10
        expected = "".join(f"{n}\n" for n in range(lines))

        def check(execution: Execution) -> str | None:
            got = "".join(execution.logs.stdout)
            if execution.error is not None or got != expected:
                return (
                    f"expected {lines} lines, got {got.count(chr(10))} ({len(got)} of {len(expected)} chars)"
                )
            return None

        self.expect_quick("flood", index, code, check)

    def timeout(self, index: int) -> None:
        timeout = round(self.random.uniform(0.3, 1.5), 2)
        outcome, value, mark = self.call("timeout", index, SPIN, timeout)
        if outcome == "raised" and isinstance(value, TimeoutException):
            return
        if outcome != "hang":
            self.problem(
                "failure", index, "timeout", SPIN, f"expected a timeout, got {outcome} {value!r}", mark
            )

    def near_timeout(self, index: int) -> None:
        token = self.token(index)
        duration = round(self.random.uniform(0.2, 1.0), 2)
        # the SDK gives up at about the end of the cell, give or take the time to get there
        timeout = round((duration + self.random.uniform(-0.05, 0.1)) / self.factor, 3)
        code = f"time.sleep({duration})\nprint({token!r})"
        outcome, value, mark = self.call("near_timeout", index, code, timeout)
        if outcome == "raised" and isinstance(value, TimeoutException):
            return
        if outcome == "ok" and value.error is None and "".join(value.logs.stdout) == token + "\n":
            return
        if outcome != "hang":
            shown = describe(value) if outcome == "ok" else repr(value)
            self.problem(
                "lost", index, "near_timeout", code, f"neither its output nor a timeout: {shown}", mark
            )

    def cancel(self, index: int, late: bool = False) -> None:
        token = self.token(index)
        code = f"print({token!r}, flush=True)\n" + ("sum(range(1000))" if late else SPIN)
        seen: list[str] = []

        def first_output(message: Any) -> None:
            seen.append(str(message))
            raise Cancelled

        kind = "cancel_late" if late else "cancel"
        outcome, value, mark = self.call(kind, index, code, QUICK_TIMEOUT_S, on_stdout=first_output)
        # the first message may be the token without its newline, which comes as a message of its own
        if outcome == "raised" and isinstance(value, Cancelled) and seen in ([token + "\n"], [token]):
            return
        if outcome == "raised" and isinstance(value, TimeoutException):
            self.problem("hang", index, kind, code, f"no output (timeout={QUICK_TIMEOUT_S} s)", mark)
            self.recover(index)
        elif outcome != "hang":
            self.problem(
                "lost", index, kind, code, f"expected {token!r} first, got {seen} {outcome} {value!r}", mark
            )

    def cancel_late(self, index: int) -> None:
        self.cancel(index, late=True)

    def restart(self, index: int, busy: bool = False) -> None:
        kind = "restart_busy" if busy else "restart"
        runner: tuple[str, Any] | None = None
        running = threading.Event()
        code = "print('running', flush=True)\n" + SPIN
        mark = self.log.mark()
        started = time.monotonic()
        if busy:
            box: list[tuple[str, Any]] = []

            def run() -> None:
                box.append(bounded(
                    lambda: self.sandbox.run_code(
                        code, context=self.context, timeout=QUICK_TIMEOUT_S, on_stdout=lambda _: running.set()
                    ),
                    self.deadline(QUICK_TIMEOUT_S),
                ))  # fmt: skip

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            if not running.wait(QUICK_TIMEOUT_S):
                self.problem("hang", index, kind, code, "the cell printed nothing", mark)
                thread.join()
                self.recover(index)
                return
        outcome, value = bounded(lambda: self.sandbox.restart_code_context(self.context), RESTART_TIMEOUT_S)
        if busy:
            thread.join()
            runner = box[0]
        self.tally.count(kind, outcome, time.monotonic() - started)
        if outcome != "ok":
            self.problem(
                "hang" if outcome == "hang" else "failure", index, kind, "", f"restart: {value!r}", mark
            )
            self.broken = True
            return
        if runner is not None:
            ended, execution = runner
            if ended != "ok" or execution.error is None or execution.error.name != "ContextRestarting":
                shown = describe(execution) if ended == "ok" else f"{ended} {execution!r}"
                problem = "hang" if ended == "hang" else "failure"
                self.problem(problem, index, kind, code, f"expected ContextRestarting, got {shown}", mark)

        def check(execution: Execution) -> str | None:
            return None if execution.text == "False" else "the state outlived the restart"

        if self.expect_quick("after_restart", index, "'counter' in globals()", check):
            self.init(index)

    def restart_busy(self, index: int) -> None:
        self.restart(index, busy=True)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))], 1) if ordered else 0.0


def wait_health(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
        if process.poll() is not None:
            raise SystemExit("the interpreter exited during start")
    raise SystemExit("the interpreter did not answer /health within 120 s")


@contextmanager
def host_server(log_path: Path) -> Iterator[str]:
    """``python -m hutch.interpreter`` on a free port, with no envd to ask for sandbox variables."""
    port = free_port()
    command = [sys.executable, "-m", "hutch.interpreter", "--port", str(port), "--cwd", tempfile.mkdtemp(),
               "--envd-url", f"http://127.0.0.1:{free_port()}"]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_health(url, process)
        yield url
    finally:
        stop(process)


@contextmanager
def image_server(log_path: Path) -> Iterator[str]:
    """The built image's server (``tests/interpreter/image.py``)."""
    built = code_interpreter.rootfs_path(Path("/var/cache/hutch"))
    if not built.exists():
        raise SystemExit(f"{built} is not built: python -m hutch.templates.code_interpreter /var/cache/hutch")
    port = free_port()
    with log_path.open("wb") as log:
        process = image.start(built, port, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_health(url, process)
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def timeout_factor(sandbox: Sandbox) -> float:
    """How many times its ``timeout=`` a call takes to time out, measured in the default context."""
    timeout = 0.25
    started = time.monotonic()
    with contextlib.suppress(TimeoutException):
        sandbox.run_code("import time\n" + SPIN, timeout=timeout)
    return max(1.0, round((time.monotonic() - started) / timeout, 1))


def stress(url: str, args: argparse.Namespace, log: ServerLog) -> dict:
    tally = Tally()
    factor = timeout_factor(sandbox_for(url, SANDBOX_ID, args.token, RESTART_TIMEOUT_S))
    workers = [
        Worker(sandbox_for(url, SANDBOX_ID, args.token, RESTART_TIMEOUT_S), n, args, tally, log, factor)
        for n in range(args.contexts)
    ]
    threads = [threading.Thread(target=worker.run, daemon=True) for worker in workers]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total_s = time.monotonic() - started
    problems = Counter(problem.kind for problem in tally.problems)
    quick = [ms for kind in QUICK_KINDS for ms in tally.latency_ms.get(kind, [])]
    every = [ms for samples in tally.latency_ms.values() for ms in samples]
    return {
        "server": url,
        "sdk_timeout_factor": factor,
        "contexts": args.contexts,
        "executions_per_context": args.executions,
        # every run_code: the drawn calls, the cells that set a context up or check it, the cells restarted
        "executions": sum(tally.calls.values()) - tally.calls["restart"],
        "by_kind": dict(sorted(tally.calls.items())),
        "outcomes": dict(sorted(tally.outcomes.items())),
        "expected_timeouts": sum(
            tally.outcomes[f"{kind}: TimeoutException"] for kind in ("timeout", "near_timeout")
        ),
        "interrupts": tally.calls["cancel"] + tally.calls["cancel_late"],
        "restarts": tally.calls["restart"] + tally.calls["restart_busy"],
        "hangs": problems.get("hang", 0),
        "lost_outputs": problems.get("lost", 0),
        "failures": problems.get("failure", 0),
        "quick_cells_ms": {"p50": percentile(quick, 0.5), "p99": percentile(quick, 0.99), "n": len(quick)},
        "all_calls_ms": {
            "p50": percentile(every, 0.5),
            "p99": percentile(every, 0.99),
            "max": percentile(every, 1),
        },
        "total_s": round(total_s, 1),
        "problems": [problem.__dict__ for problem in tally.problems],
        "unfinished_workers": sum(worker.broken for worker in workers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="a running interpreter (a sandbox's port 49999)")
    where.add_argument("--image", action="store_true", help="the built code-interpreter-v1 image's server")
    parser.add_argument("--token", help="the sandbox's envd access token, with --url")
    parser.add_argument("--contexts", type=int, default=8)
    parser.add_argument("--executions", type=int, default=500, help="calls per context")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EXECUTIONS} calls per context")
    parser.add_argument("--margin", type=float, default=15.0, help="seconds past a call's timeout: a hang")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--log", type=Path, help="where the started server's output goes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.executions = QUICK_EXECUTIONS
    log_path = args.log or Path(tempfile.mkdtemp(prefix="interpreter-stress-")) / "server.log"

    if args.url:
        results = stress(args.url, args, ServerLog(None))
    else:
        with (image_server if args.image else host_server)(log_path) as url:
            results = stress(url, args, ServerLog(log_path))
        results["server_log"] = str(log_path)

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"code interpreter stress ({results['server']}): {args.contexts} contexts x {args.executions}")
        for name, value in results.items():
            if name != "problems":
                print(f"  {name:24} {value}")
        for problem in results["problems"]:
            print(f"  {problem['kind'].upper()} context {problem['context']} call {problem['index']} "
                  f"({problem['cell']}): {problem['detail']}\n    code: {problem['code']!r}")  # fmt: skip
            for line in problem["log"]:
                print(f"    | {line}")
    bad = results["hangs"] + results["lost_outputs"] + results["failures"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
