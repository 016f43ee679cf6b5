"""The fork server's rehearsal: it serves envd's first requests in-process and leaves nothing behind."""

from __future__ import annotations

import os
import threading

import pytest

from hutch.envd import rehearsal


def _descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_the_rehearsal_leaves_no_thread_descriptor_or_loop() -> None:
    before, threads = _descriptors(), set(threading.enumerate())
    rehearsal.rehearse(runs=3)
    assert set(threading.enumerate()) <= threads
    assert _descriptors() <= before


def test_a_request_the_rehearsal_cannot_serve_fails_it(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = b"GET /no-such-route HTTP/1.1\r\nHost: envd\r\n\r\n"
    monkeypatch.setattr(rehearsal, "REQUESTS", (*rehearsal.REQUESTS, missing))
    with pytest.raises(RuntimeError, match="404"):
        rehearsal.rehearse(runs=1)
