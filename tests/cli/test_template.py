"""``hutch template ls|build|rm``: the built-in templates are listed and cannot be removed; a Dockerfile
becomes a template that sandboxes start from, with cached layers on a second build."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from e2b import Sandbox

from tests.cli.conftest import Hutch, error_line, parse
from tests.stack import Stack


def test_ls_lists_the_built_in_templates(hutch: Hutch) -> None:
    templates = parse(hutch("template", "ls", "--json"))
    [base] = [item for item in templates if "base" in item["aliases"]]
    assert base["isDefault"] is True and base["buildStatus"] == "ready"
    table = hutch("template", "ls")
    assert table.returncode == 0
    [row] = [line for line in table.stdout.splitlines() if line.split()[:1] == [base["templateID"]]]
    assert "base" in row


def test_rm_refuses_built_ins_and_unknown_templates(hutch: Hutch) -> None:
    line = error_line(hutch("template", "rm", "base"))
    assert line.startswith("403: ") and "built in" in line
    assert error_line(hutch("template", "rm", "no-such-template")).startswith("404: ")
    assert any("base" in item["aliases"] for item in parse(hutch("template", "ls", "--json")))


DOCKERFILE = """\
FROM e2bdev/base
ARG GREETING=hello
ENV WHO=world
COPY app/ /srv/app/
WORKDIR /srv/app
RUN echo "$GREETING $WHO" > greeting.txt && chmod 644 greeting.txt
USER user
CMD ["python3", "-m", "http.server", "8080"]
"""


def test_build_from_a_dockerfile_then_use_and_remove_it(hutch: Hutch, stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text(f"print('{uuid.uuid4().hex}')\n")
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    name = f"cli-{uuid.uuid4().hex[:8]}"
    ready = "--ready-cmd", "curl -sf -o /dev/null http://127.0.0.1:8080/"
    built = parse(hutch("template", "build", name, "-f", str(tmp_path / "Dockerfile"), *ready, "--json"))
    assert built["name"] == name and built["tags"] == ["default"]
    sandbox = Sandbox.create(name, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        assert sandbox.files.read("/srv/app/greeting.txt") == "hello world\n"
        result = sandbox.commands.run(
            "whoami; pwd; python3 main.py; curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/"
        )
        assert result.stdout.splitlines()[:2] == ["user", "/srv/app"] and result.stdout.endswith("200")
    finally:
        sandbox.kill()
    # Again: every layer is cached; the progress bar and the log go to the terminal.
    again = hutch("template", "build", name, "-f", str(tmp_path / "Dockerfile"), *ready)
    assert again.returncode == 0, again.stderr
    # (ENV changes no files, so it has no layer to reuse.)
    steps = [line for line in again.stdout.splitlines() if re.match(r"\[\d+\] (?!ENV )", line)]
    assert len(steps) >= 5 and all(" CACHED " in line for line in steps), again.stdout
    assert f"built {name}" in again.stdout
    listed = parse(hutch("template", "ls", "--json"))
    assert [item["buildStatus"] for item in listed if name in item["aliases"]] == ["ready"]
    assert hutch("template", "rm", name).returncode == 0
    assert not [item for item in parse(hutch("template", "ls", "--json")) if name in item["aliases"]]


def test_build_errors_name_the_step(hutch: Hutch, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM e2bdev/base\nRUN true\nRUN echo broken >&2 && false\n")
    line = error_line(
        hutch("template", "build", f"bad-{uuid.uuid4().hex[:8]}", "-f", str(tmp_path / "Dockerfile"))
    )
    assert line.startswith("build failed:") and "exit code 1" in line
    missing = hutch("template", "build", "x", "-f", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
