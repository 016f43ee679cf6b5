"""Finding and reading ``.env.local``, the file of client settings that ``hutch up`` writes."""

from __future__ import annotations

from pathlib import Path

ENV_FILE = ".env.local"


def find_env_file(start: Path) -> Path | None:
    """The nearest ``.env.local`` in ``start`` or one of its parents, if there is one."""
    for directory in (start, *start.parents):
        candidate = directory / ENV_FILE
        if candidate.is_file():
            return candidate
    return None


def read_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of ``path`` (none when there is no such file).

    Blank lines and ``#`` comments are skipped; an ``export`` prefix and quotes around a value are removed.
    """
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values
