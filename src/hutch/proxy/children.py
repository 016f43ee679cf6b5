"""A child process that ``hutch up`` keeps running: started again whenever it dies, at once, and after a
pause that grows (up to :data:`MAX_BACKOFF_S`) only while it keeps dying within seconds of its start;
stopped with SIGTERM and, if it has not exited after its stop timeout, SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

# A child that dies sooner than this after its start counts as failing to start.
QUICK_DEATH_S = 5
MAX_BACKOFF_S = 5

log = logging.getLogger(__name__)


class Supervised:
    """The supervision of one child: subclasses say how to start it (``_spawn``), what it is called in the
    log (``name``) and how long it has to stop after SIGTERM (``stop_timeout_s``)."""

    name = "the child"
    stop_timeout_s: float = 10

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._supervising: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def _spawn(self) -> asyncio.subprocess.Process:
        """Start the child and remember it as ``self._process``."""
        raise NotImplementedError

    def _keep_running(self) -> None:
        """From now on, start the child again whenever it dies."""
        self._supervising = asyncio.ensure_future(self._supervise())

    async def _stop_child(self) -> None:
        """Stop supervising, then the child: SIGTERM, SIGKILL after ``stop_timeout_s``."""
        self._stopping = True
        if self._supervising is not None:
            self._supervising.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervising
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):  # it exited just now
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), self.stop_timeout_s)
        except TimeoutError:
            log.warning(
                "%s (pid %d) did not stop in %g s: killed", self.name, process.pid, self.stop_timeout_s
            )
            process.kill()
            await process.wait()

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            assert self._process is not None
            started = time.monotonic()
            code = await self._process.wait()
            if self._stopping:
                return
            failures = failures + 1 if time.monotonic() - started < QUICK_DEATH_S else 0
            log.warning("%s (pid %d) %s; starting it again", self.name, self._process.pid, _describe(code))
            await asyncio.sleep(0.0 if failures <= 1 else min(MAX_BACKOFF_S, 0.25 * 2**failures))
            try:
                process = await self._spawn()
            except OSError as err:
                log.error("could not start %s: %s", self.name, err)
                failures += 1
                await asyncio.sleep(MAX_BACKOFF_S)
                continue
            log.info("%s runs again (pid %d)", self.name, process.pid)


def _describe(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"
