"""``hutch sandbox ls|create|kill|logs|metrics``: the control-plane side of sandboxes (``exec`` and
``shell`` are in :mod:`.shell`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .client import Api, fail, segment
from .output import JsonOption, console, emit_json, short_time, table

app = typer.Typer(help="List, create, run commands in and kill sandboxes.", no_args_is_help=True)

SandboxId = Annotated[str, typer.Argument(help="The sandbox's id.")]


def _metadata(pairs: list[str]) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--metadata wants KEY=VALUE, not {pair!r}")
        metadata[key] = value
    return metadata


@app.command("ls")
def list_sandboxes(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the team's sandboxes (running and paused)."""
    with Api(ctx.obj) as api:
        sandboxes = list(api.pages("/v2/sandboxes"))
    if as_json:
        emit_json(sandboxes)
        return
    table(
        ["ID", "TEMPLATE", "STATE", "STARTED", "ENDS", "CPU", "MEMORY", "METADATA"],
        (
            [
                item["sandboxID"],
                item.get("alias") or item["templateID"],
                item["state"],
                short_time(item["startedAt"]),
                short_time(item["endAt"]),
                item["cpuCount"],
                f"{item['memoryMB']} MB",
                " ".join(f"{k}={v}" for k, v in (item.get("metadata") or {}).items()),
            ]
            for item in sandboxes
        ),
        empty="No sandboxes.",
    )


@app.command("create")
def create(
    ctx: typer.Context,
    template: Annotated[str, typer.Option("--template", "-t", help="Template id or alias.")] = "base",
    timeout: Annotated[int | None, typer.Option(help="Seconds to live (the API's default: 300).")] = None,
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", "-m", help="KEY=VALUE, repeatable.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a sandbox and print its id."""
    body: dict[str, Any] = {"templateID": template, "metadata": _metadata(metadata or []), "envVars": {}}
    if timeout is not None:
        body["timeout"] = timeout
    with Api(ctx.obj) as api:
        sandbox = api.json("POST", "/v2/sandboxes", json=body)
    if as_json:
        emit_json(sandbox)
    else:
        console.print(sandbox["sandboxID"], highlight=False)


@app.command("kill")
def kill(ctx: typer.Context, sandbox_ids: Annotated[list[str], typer.Argument(help="Sandbox ids.")]) -> None:
    """Kill sandboxes."""
    with Api(ctx.obj) as api:
        for sandbox_id in sandbox_ids:
            api.call("DELETE", f"/sandboxes/{segment(sandbox_id)}")
            console.print(f"killed {sandbox_id}", highlight=False)


@app.command("logs")
def logs(ctx: typer.Context, sandbox_id: SandboxId, as_json: JsonOption = False) -> None:
    """Print a sandbox's logs (where the API keeps them)."""
    with Api(ctx.obj) as api:
        body = api.json("GET", f"/sandboxes/{segment(sandbox_id)}/logs")
    if as_json:
        emit_json(body)
        return
    for entry in body.get("logEntries", []):
        console.print(f"{short_time(entry.get('timestamp'))}  {entry.get('message', '')}", highlight=False)


@app.command("metrics")
def metrics(ctx: typer.Context, sandbox_id: SandboxId, as_json: JsonOption = False) -> None:
    """Print a sandbox's CPU, memory and disk use."""
    with Api(ctx.obj) as api:
        samples = api.json("GET", f"/sandboxes/{segment(sandbox_id)}/metrics")
    if as_json:
        emit_json(samples)
        return
    mib = 1024 * 1024
    table(
        ["TIME", "CPUS", "CPU %", "MEMORY MiB", "DISK MiB"],
        (
            [
                short_time(sample["timestamp"]),
                sample["cpuCount"],
                f"{sample['cpuUsedPct']:.1f}",
                f"{sample['memUsed'] // mib} / {sample['memTotal'] // mib}",
                f"{sample['diskUsed'] // mib} / {sample['diskTotal'] // mib}",
            ]
            for sample in samples
        ),
        empty="No metrics yet.",
    )
