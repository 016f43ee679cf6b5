"""``hutch``: one sub-command per job. ``hutch up`` starts the stack, ``hutch down`` stops a detached one."""

from __future__ import annotations

import typer

from . import server

app = typer.Typer(help="Hutch: self-hosted, E2B-compatible sandboxes.", no_args_is_help=True)
app.command("up")(server.up)
app.command("down")(server.down)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
