"""``python3 -m hutch.envd --port PORT`` (or ``python3 envd.pyz --port PORT``): run envd."""

from __future__ import annotations

import sys

# envd never speaks TLS and hashes only a few bytes (signed URLs): keep asyncio from loading ssl, and
# hashlib and hmac from loading OpenSSL (they fall back to CPython's own SHA-256 and constant-time
# compare). That saves about 8 MiB of memory in every sandbox. This module only runs as envd's entry.
sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]
sys.modules.setdefault("_hashlib", None)  # type: ignore[arg-type]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from typing import Callable  # noqa: E402

from . import FORK_SERVER_ENV, reaper  # noqa: E402
from .router import Envd  # noqa: E402
from .server import serve  # noqa: E402
from .state import EnvdState  # noqa: E402
from .version import VERSION  # noqa: E402

# How long a stop waits for the open streams to send their end (each ends at once; this bounds a stuck one).
STREAMS_END_S = 1.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="envd", description="Hutch's in-sandbox daemon (E2B envd protocol)."
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("ENVD_PORT", "49983")))
    parser.add_argument("--host", default=os.environ.get("ENVD_HOST", "0.0.0.0"))
    parser.add_argument("--default-user", default=os.environ.get("ENVD_DEFAULT_USER", "root"))
    parser.add_argument(
        "--set-clock",
        action="store_true",
        help="set the system clock from /init (only in a VM with its own clock)",
    )
    parser.add_argument("--log-level", default=os.environ.get("ENVD_LOG_LEVEL", "INFO"))
    parser.add_argument("--version", action="version", version=VERSION)
    return parser.parse_args(argv)


async def run(
    args: argparse.Namespace, *, reaps_orphans: bool = False, listening: Callable[[], None] | None = None
) -> None:
    state = EnvdState(default_user=args.default_user)
    state.set_clock = args.set_clock
    envd = Envd(state)
    server = await serve(envd, args.host, args.port)
    if listening is not None:
        listening()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if reaps_orphans or os.getpid() == 1:
        reaper.install(loop, lambda pid: pid in state.processes.live)
    await stop.wait()
    # Refuse new connections first, then end the open streams with an error their clients see.
    server.close()
    state.stopping.set()
    await state.streams_ended(STREAMS_END_S)
    state.processes.kill_all()
    # Nothing is left to finish: exit now rather than tear the interpreter down (the kill waits for it).
    logging.shutdown()
    os._exit(0)


def main(argv=None) -> None:
    """Run envd; or, started by a node as its fork server, make every crun sandbox's envd (each then runs
    on here as a subreaper that reaps its orphans)."""
    args = parse_args(argv)
    # One line per event, stamped in UTC: the runtime serves this log as the sandbox's logs.
    logging.Formatter.converter = time.gmtime
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s.%(msecs)03dZ %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    control = os.environ.pop(FORK_SERVER_ENV, None)
    if control is None:
        asyncio.run(run(args))
        return
    from .fork_server import serve  # only the fork server needs ctypes

    # What every envd would parse and configure alike is done here, once, in pages they all share.
    serve(int(control), lambda listening: asyncio.run(run(args, reaps_orphans=True, listening=listening)))


if __name__ == "__main__":
    main()
