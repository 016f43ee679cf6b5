"""``python3 -m hutch.interpreter --port 49999 [--host 0.0.0.0] [--cwd DIR] [--envd-url URL]``."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from .app import create_app
from .envs import DEFAULT_ENVD_URL


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m hutch.interpreter", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=49999)
    parser.add_argument("--cwd", default="/home/user", help="working directory of the default contexts")
    parser.add_argument("--envd-url", default=DEFAULT_ENVD_URL, help="where envd answers GET /envs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per GET /envs
    uvicorn.run(
        create_app(default_cwd=args.cwd, envd_url=args.envd_url),
        host=args.host,
        port=args.port,
        access_log=False,
        timeout_keep_alive=640,
        # a cell that runs on must not hold the shutdown up: its request is cancelled, the kernel stopped
        timeout_graceful_shutdown=3,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
