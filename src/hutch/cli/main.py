"""``hutch``: one sub-command per job. ``hutch up`` starts the stack, ``hutch down`` stops a detached one;
the others talk to a running stack's API over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from . import cluster, key, sandbox, server, shell, team, template
from .client import Connection
from .doctor import doctor
from .status import status

app = typer.Typer(help="Hutch: self-hosted, E2B-compatible sandboxes.", no_args_is_help=True)


@app.callback()
def connect(
    ctx: typer.Context,
    api_url: Annotated[
        str | None, typer.Option(help="The API (default: E2B_API_URL, else .env.local, else localhost:3000).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="The API key (default: E2B_API_KEY, else .env.local).")
    ] = None,
) -> None:
    ctx.obj = Connection.resolve(api_url, api_key)


app.command("up")(server.up)
app.command("down")(server.down)
app.command("api")(cluster.api)
app.command("proxy")(cluster.proxy)
app.add_typer(cluster.node_app, name="node")
app.command("status")(status)
app.command("doctor")(doctor)
sandbox.app.command("exec", context_settings=shell.EXEC_CONTEXT)(shell.execute)
sandbox.app.command("shell")(shell.shell)
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(template.app, name="template")
app.add_typer(key.app, name="key")
app.add_typer(team.app, name="team")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
