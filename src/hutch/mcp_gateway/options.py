"""The command line: ``mcp-gateway --config JSON`` starts the gateway and returns once it serves; the
gateway itself runs as ``mcp-gateway serve --status-fd N`` with the same options. The defaults are the
template's; tests and benchmarks change them."""

from __future__ import annotations

import argparse
from pathlib import Path

PORT = 50005
STATE_DIR = Path("/etc/mcp-gateway")
LOG_FILE = Path("/var/log/mcp-gateway/gateway.log")
SERVERS_DIR = Path("/opt/mcp-servers")
USER = "user"
# Below the 60 s the SDK waits for ``mcp-gateway --config`` by default.
START_TIMEOUT_S = 50.0


def parser() -> argparse.ArgumentParser:
    about = "MCP servers behind one streamable HTTP endpoint"
    parsed = argparse.ArgumentParser(prog="mcp-gateway", description=about)
    parsed.add_argument("--config", help="the servers, as JSON (the SDK's mcp argument)")
    parsed.add_argument("--host", default="0.0.0.0")
    parsed.add_argument("--port", type=int, default=PORT)
    parsed.add_argument("--state-dir", type=Path, default=STATE_DIR, help="where .token and config.json go")
    parsed.add_argument("--log-file", type=Path, default=LOG_FILE)
    parsed.add_argument("--servers-dir", type=Path, default=SERVERS_DIR, help="custom servers' clones")
    parsed.add_argument("--user", default=USER, help="who the servers run as (when started by root)")
    parsed.add_argument("--start-timeout", type=float, default=START_TIMEOUT_S)
    parsed.add_argument("command", nargs="?", choices=["serve"], help=argparse.SUPPRESS)
    parsed.add_argument("--status-fd", type=int, help=argparse.SUPPRESS)
    return parsed


def forwarded(options: argparse.Namespace) -> list[str]:
    """The options the launcher hands to the gateway it starts."""
    return [
        "--host", options.host, "--port", str(options.port), "--state-dir", str(options.state_dir),
        "--log-file", str(options.log_file), "--servers-dir", str(options.servers_dir),
        "--user", options.user, "--start-timeout", str(options.start_timeout),
    ]  # fmt: skip
