"""A stdio MCP server for the gateway's tests, on the ``mcp`` library alone: ``add``, ``echo``, ``whoami``
(the account and one variable it runs with), ``crash`` (exits at once), ``flood`` (an answer of ``size``
bytes on one line), a prompt and a resource. ``ECHO_SERVER_MODE`` makes it misbehave from the start:
``exit`` (dies before it answers), ``stderr`` (floods stderr, then serves)."""

from __future__ import annotations

import os
import pwd
import sys

from mcp.server.fastmcp import FastMCP

server = FastMCP("echo")


@server.tool()
def add(a: int, b: int) -> int:
    return a + b


@server.tool()
def echo(text: str) -> str:
    return text


@server.tool()
def whoami(variable: str) -> str:
    return f"{pwd.getpwuid(os.getuid()).pw_name} {os.environ.get(variable, '-')}"


@server.tool()
def crash() -> str:
    os._exit(3)


@server.tool()
def flood(size: int) -> str:
    return "x" * size


@server.prompt()
def greet(name: str) -> str:
    return f"Hello, {name}"


@server.resource("echo://readme")
def readme() -> str:
    return "the echo server"


if __name__ == "__main__":
    mode = os.environ.get("ECHO_SERVER_MODE", "")
    if mode == "exit":
        print("going down before MCP starts", file=sys.stderr)
        sys.exit(5)
    if mode == "stderr":
        for _ in range(200_000):
            sys.stderr.write("noise " * 20 + "\n")
    server.run("stdio")
