"""A command left running in a sandbox through the official SDK, on a thread of its own, to see how its
call ends when the sandbox goes away under it."""

from __future__ import annotations

import threading
import time

from e2b import Sandbox

COMMAND = "sleep 60"


class CommandInFlight:
    """``sandbox.commands.run(COMMAND)`` on a thread; :meth:`outcome` is what the call raised."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(sandbox,))
        self._thread.start()
        deadline = time.monotonic() + 10
        while COMMAND not in sandbox.commands.run("ps -eo args").stdout:
            assert time.monotonic() < deadline, "the command did not start"
            time.sleep(0.05)

    def _run(self, sandbox: Sandbox) -> None:
        try:
            sandbox.commands.run(COMMAND, timeout=0)
        except BaseException as error:
            self.errors.append(error)

    def outcome(self, timeout_s: float) -> BaseException:
        """Wait up to ``timeout_s`` for the call to end; the one error it raised."""
        self._thread.join(timeout=timeout_s)
        assert not self._thread.is_alive(), "the command outlived its sandbox"
        assert len(self.errors) == 1, self.errors
        return self.errors[0]
