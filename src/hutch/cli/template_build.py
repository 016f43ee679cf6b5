"""``hutch template build``: a template from a Dockerfile, through the official SDK's ``Template`` (its
Dockerfile translation: FROM, RUN, COPY, ADD, ENV, WORKDIR, USER, ARG, CMD, ENTRYPOINT) and E2B's build
API, with the build's steps as a progress bar and its log below it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .client import Connection, fail
from .output import JsonOption, console, emit_json


def build(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The template's name, optionally with a tag: name[:tag].")],
    dockerfile: Annotated[
        Path, typer.Option("--file", "-f", help="The Dockerfile.", exists=True, dir_okay=False)
    ] = Path("Dockerfile"),
    context: Annotated[
        Path | None,
        typer.Option(
            "--context",
            "-c",
            help="Where COPY finds files (default: the Dockerfile's directory).",
            file_okay=False,
        ),
    ] = None,
    cpu: Annotated[int | None, typer.Option("--cpu", min=1, help="CPUs of its sandboxes.")] = None,
    memory_mb: Annotated[
        int | None, typer.Option("--memory-mb", min=128, help="Memory of its sandboxes.")
    ] = None,
    start_cmd: Annotated[
        str | None, typer.Option("--start-cmd", help="Start command (instead of CMD).")
    ] = None,
    ready_cmd: Annotated[
        str | None, typer.Option("--ready-cmd", help="Ready command for the start command.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every layer.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Build a template from a Dockerfile; sandboxes can then be created from NAME."""
    from e2b import BuildException, Template, TemplateException

    connection: Connection = ctx.obj
    try:
        template = Template(file_context_path=context or dockerfile.parent).from_dockerfile(str(dockerfile))
        if start_cmd:
            template = template.set_start_cmd(start_cmd, ready_cmd or "true")
        elif ready_cmd:
            template = template.set_ready_cmd(ready_cmd)
    except TemplateException as error:
        fail(f"{dockerfile}: {error}")
    steps = len(json.loads(Template.to_json(template)).get("steps", []))
    options: dict[str, Any] = {"cpu_count": cpu, "memory_mb": memory_mb, "skip_cache": no_cache}
    with _progress(enabled=not as_json, total=steps + 2) as show:
        try:
            info = Template.build(template, name, on_build_logs=show, **options, **connection.sdk_options())
        except BuildException as error:
            fail(f"build failed: {error}")
        except TemplateException as error:
            fail(str(error))
    result = {"templateID": info.template_id, "buildID": info.build_id, "name": info.name, "tags": info.tags}
    if as_json:
        emit_json(result)
    else:
        console.print(f"built {info.name} ({info.template_id}, build {info.build_id})", highlight=False)


# The builder's line for step N starts with ``[N]``.
_STEP_LINE = re.compile(r"\[(\d+)\] ")


class _Shown:
    """Log entries to the console above a bar that advances with the build's steps (base, each step,
    the final check)."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.task = progress.add_task("base image", total=total) if progress else None

    def __call__(self, entry: Any) -> None:
        if self.progress is None or self.task is None:
            return
        step = _STEP_LINE.match(entry.message)
        if step:
            index = int(step.group(1))
            self.progress.update(self.task, completed=index + 1, description=f"step {index}")
        elif entry.message.startswith("starting the template"):
            self.progress.update(self.task, completed=self.total - 1, description="start check")
        if entry.level != "debug":
            self.progress.console.print(entry.message, highlight=False, markup=False, soft_wrap=True)


@contextmanager
def _progress(*, enabled: bool, total: int) -> Iterator[_Shown]:
    """A live progress bar (none with ``enabled`` off, for ``--json``)."""
    if not enabled:
        yield _Shown(None, total)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        yield _Shown(progress, total)
