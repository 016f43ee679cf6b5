"""``hutch template ls|build|rm``: the templates a team may use, building one from a Dockerfile, and
removing the team's own."""

from __future__ import annotations

from typing import Annotated

import typer

from .client import Api, segment
from .output import JsonOption, console, emit_json, short_time, table
from .template_build import build

app = typer.Typer(help="List, build and remove templates.", no_args_is_help=True)
app.command("build")(build)


@app.command("ls")
def list_templates(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the templates the team may use: built-in, its own and other teams' public ones."""
    with Api(ctx.obj) as api:
        templates = api.json("GET", "/templates")
    if as_json:
        emit_json(templates)
        return
    table(
        ["ID", "NAMES", "CPU", "MEMORY MB", "DISK MB", "PUBLIC", "BUILT IN", "UPDATED"],
        (
            [
                item["templateID"],
                ", ".join(item.get("aliases") or []),
                item["cpuCount"],
                item["memoryMB"],
                item["diskSizeMB"],
                "yes" if item["public"] else "no",
                "yes" if item.get("isDefault") else "no",
                short_time(item["updatedAt"]),
            ]
            for item in templates
        ),
        empty="No templates.",
    )


@app.command("rm")
def remove(
    ctx: typer.Context, templates: Annotated[list[str], typer.Argument(help="Template ids or aliases.")]
) -> None:
    """Remove the team's own templates (sandboxes started from them keep running)."""
    with Api(ctx.obj) as api:
        for template in templates:
            api.call("DELETE", f"/templates/{segment(template)}")
            console.print(f"removed {template}", highlight=False)
