"""At exit, ``hutch.sdk`` waits for threads started outside Python that are still running Python code.

Such a thread is made here with ``_thread``, which ``threading`` does not know, as a Rust thread of the SDK's
HTTP client is; each program runs in a subprocess of its own, so its exit is a real interpreter exit.
"""

from __future__ import annotations

import _thread
import subprocess
import sys
import threading
from pathlib import Path

from hutch.sdk._exit import foreign_threads_in_python

EXIT_TIMEOUT_S = 30

FOREIGN_THREAD_ENDS_LATE = """
import _thread, sys, time
from pathlib import Path
import hutch.sdk

running = _thread.allocate_lock()
running.acquire()

def late():
    running.release()
    time.sleep(0.5)
    Path(sys.argv[1]).write_text("finished")

_thread.start_new_thread(late, ())
running.acquire()
"""

FOREIGN_THREAD_NEVER_ENDS = """
import _thread, time
import hutch.sdk

def forever():
    while True:
        time.sleep(0.01)

_thread.start_new_thread(forever, ())
"""


def _run(program: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", program, *args], capture_output=True, text=True, timeout=EXIT_TIMEOUT_S
    )


def test_exit_waits_until_a_foreign_thread_has_left_python(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    process = _run(FOREIGN_THREAD_ENDS_LATE, str(marker))
    assert process.returncode == 0, process.stderr
    assert marker.read_text() == "finished"


def test_without_the_sdk_the_same_thread_is_cut_off(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    process = _run(FOREIGN_THREAD_ENDS_LATE.replace("import hutch.sdk\n", ""), str(marker))
    assert process.returncode == 0, process.stderr
    assert not marker.exists()


def test_a_foreign_thread_that_never_leaves_python_does_not_hold_the_exit() -> None:
    process = _run(FOREIGN_THREAD_NEVER_ENDS)
    assert process.returncode == 0, process.stderr


def test_only_threads_started_outside_threading_are_waited_for() -> None:
    release = threading.Event()
    foreign_started, foreign_done = threading.Event(), threading.Event()
    foreign_ident: list[int] = []

    def wait() -> None:
        foreign_ident.append(_thread.get_ident())
        foreign_started.set()
        release.wait()
        foreign_done.set()

    started = threading.Thread(target=release.wait, daemon=True)
    started.start()
    _thread.start_new_thread(wait, ())
    assert foreign_started.wait(EXIT_TIMEOUT_S)
    try:
        waited_for = foreign_threads_in_python()
        assert foreign_ident[0] in waited_for
        assert started.ident not in waited_for
        assert threading.get_ident() not in waited_for
    finally:
        release.set()
    assert foreign_done.wait(EXIT_TIMEOUT_S)
    started.join(EXIT_TIMEOUT_S)
