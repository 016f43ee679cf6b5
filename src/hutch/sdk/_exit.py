"""At interpreter exit, wait until no thread started outside Python is running Python code.

The ``e2b`` SDK's HTTP client (``pyqwest``) hands results to an asyncio loop from its own Rust threads by
calling ``loop.call_soon_threadsafe``, which writes to the loop's wake-up socket with the GIL released.
When that write is an async program's last response, the main thread can run to its end and start
finalizing before the Rust thread takes the GIL back. Before Python 3.14 such a thread then calls
``pthread_exit``, whose unwinding cannot pass the Rust frames, and the process aborts (SIGABRT) after
all its work is done. Waiting here, before finalization starts, lets that thread finish its call.

Threads that ``threading`` started are not waited for: by the time exit handlers run, Python has joined
those that are not daemons, and a daemon may run forever.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time

WAIT_S = 1.0
POLL_S = 0.001


def foreign_threads_in_python() -> list[int]:
    """The ids of the threads not started by ``threading`` that are running Python code now."""
    started = {
        thread.ident for thread in threading.enumerate() if not isinstance(thread, threading._DummyThread)
    }
    return [ident for ident in sys._current_frames() if ident not in started]


def wait_for_foreign_threads(wait_s: float = WAIT_S) -> None:
    """Return once no foreign thread runs Python code, or after ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while foreign_threads_in_python() and time.monotonic() < deadline:
        time.sleep(POLL_S)


def settle_at_exit() -> None:
    """Run ``wait_for_foreign_threads`` when the interpreter exits (once, however often it is called)."""
    atexit.unregister(wait_for_foreign_threads)
    atexit.register(wait_for_foreign_threads)
