"""A cluster's processes and its operator's commands: ``hutch api`` and ``hutch proxy`` (stateless
replicas), ``hutch node`` (one machine that hosts sandboxes), and ``hutch node ls|drain|undrain``, which
send the operator key to the API."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Annotated, Any

import typer
from rich.logging import RichHandler

from ..config import Settings
from .client import Api, fail, segment
from .output import JsonOption, console, emit_json, short_time, table
from .team import DataDirOption

LogLevelOption = Annotated[str, typer.Option(help="Log level.")]

node_app = typer.Typer(
    help="Run this machine as a node of a cluster (no sub-command), or list, drain and undrain the nodes.",
    invoke_without_command=True,
)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _settings() -> Settings:
    settings = Settings()
    try:
        settings.cluster.key()
    except (ValueError, OSError) as error:
        fail(str(error))
    return settings


def api(log_level: LogLevelOption = "INFO") -> None:
    """Serve the API as one replica of a cluster (on HUTCH_API__HOST/PORT), over the nodes registered in
    the catalog (HUTCH_CATALOG__URL, PostgreSQL), with the cluster secret."""
    settings = _settings()
    _logging(log_level)
    from ..replicas import run_api  # the API's imports are loaded only here

    asyncio.run(run_api(settings))


def proxy(log_level: LogLevelOption = "INFO") -> None:
    """Serve the data plane as one replica of a cluster (on HUTCH_PROXY__HOST/PORT): each request goes to
    the node that holds its sandbox."""
    settings = _settings()
    _logging(log_level)
    from ..replicas import run_proxy

    asyncio.run(run_proxy(settings))


@node_app.callback()
def node(ctx: typer.Context, log_level: LogLevelOption = "INFO") -> None:
    """Without a sub-command: serve this machine as a node (its runtime, templates and pools) until
    SIGTERM; the node API on HUTCH_NODE__PORT and sandbox traffic on HUTCH_NODE__TRAFFIC_PORT."""
    if ctx.invoked_subcommand is not None:
        return
    if os.geteuid() != 0:
        fail("hutch node needs root (it mounts overlays, creates network namespaces and runs crun)")
    settings = _settings()
    _logging(log_level)
    from ..node.serve import run

    try:
        asyncio.run(run(settings, say=lambda line: console.print(line, highlight=False)))
    except ValueError as error:
        fail(str(error))


def _gib(mb: int) -> str:
    return f"{mb / 1024:.1f}"


@node_app.command("ls")
def list_nodes(ctx: typer.Context, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List the nodes: status, sandboxes, what they offer and what their sandboxes hold, last heartbeat."""
    with Api.as_operator(ctx.obj, data_dir) as api:
        found: list[dict[str, Any]] = api.json("GET", "/nodes")
    if as_json:
        emit_json(found)
        return
    table(
        ["NODE", "STATUS", "SANDBOXES", "CPU", "MEMORY GiB", "DISK GiB", "ADDRESS", "HEARTBEAT"],
        (
            [
                n["nodeID"],
                n["status"],
                n["sandboxCount"],
                f"{n['allocatedCPU']}/{n['cpuCount']}",
                f"{_gib(n['allocatedMemoryMB'])}/{_gib(n['memoryMB'])}",
                f"{_gib(n['allocatedDiskMB'])}/{_gib(n['diskMB'])}",
                n["address"],
                short_time(n["heartbeatAt"]),
            ]
            for n in found
        ),
        empty="No nodes (one machine: hutch up runs its own).",
    )


def _set_status(ctx: typer.Context, node_id: str, status: str, data_dir: Any) -> None:
    with Api.as_operator(ctx.obj, data_dir) as api:
        api.json("POST", f"/nodes/{segment(node_id)}", json={"status": status})


NodeIdArgument = Annotated[str, typer.Argument(help="The node's id.")]


@node_app.command("drain")
def drain(ctx: typer.Context, node_id: NodeIdArgument, data_dir: DataDirOption = None) -> None:
    """Place no new sandbox on the node; those it holds run on until they end."""
    _set_status(ctx, node_id, "draining", data_dir)
    console.print(f"node {node_id} is draining: no new sandbox goes there", highlight=False)


@node_app.command("undrain")
def undrain(ctx: typer.Context, node_id: NodeIdArgument, data_dir: DataDirOption = None) -> None:
    """Place new sandboxes on the node again."""
    _set_status(ctx, node_id, "ready", data_dir)
    console.print(f"node {node_id} takes new sandboxes again", highlight=False)
