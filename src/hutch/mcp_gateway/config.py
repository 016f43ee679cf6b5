"""The gateway's configuration (the SDK's ``mcp`` argument, as JSON): each entry checked and turned into a
``ServerPlan``, what to fetch, install and run. Keys are names of the built-in catalog (``catalog.json``)
with that server's settings, or ``github/<owner>/<repo>`` with ``installCmd`` (optional) and ``runCmd``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

MAX_CONFIG_BYTES = 64 * 1024
MAX_SERVERS = 16
MAX_VALUE_CHARS = 8192
# GitHub's rules for an account name, and the characters it allows in a repository name.
_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
_PREFIX_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
TOOL_SEPARATOR = "__"


class ConfigError(ValueError):
    """A configuration the gateway refuses; its message says which entry and why."""


@dataclass(frozen=True)
class Repository:
    owner: str
    name: str

    @property
    def url(self) -> str:
        return f"https://github.com/{self.owner}/{self.name}"


@dataclass(frozen=True)
class ServerPlan:
    """One server: its name in the configuration, the prefix of its tools' and prompts' names, and how it
    runs (``command``, an argument vector; a custom server's is ``sh -c runCmd`` in its clone)."""

    name: str
    prefix: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    repository: Repository | None = None
    install_cmd: str | None = None


def load_catalog() -> dict[str, dict[str, Any]]:
    return json.loads(resources.files(__package__).joinpath("catalog.json").read_text())


def parse(text: str) -> list[ServerPlan]:
    """The plans of a configuration's servers, in its order; ``ConfigError`` on anything wrong with it."""
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the configuration is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"the configuration is not JSON: {error}") from None
    if not isinstance(config, dict) or not config:
        raise ConfigError("the configuration must be an object with at least one server")
    if len(config) > MAX_SERVERS:
        raise ConfigError(f"{len(config)} servers configured; at most {MAX_SERVERS}")
    catalog = load_catalog()
    plans: list[ServerPlan] = []
    for name, settings in config.items():
        if not isinstance(settings, dict):
            raise ConfigError(f"{name}: its settings must be an object")
        if name.startswith("github/"):
            plan = _custom(name, settings)
        else:
            plan = _from_catalog(name, settings, catalog)
        clash = next((other.name for other in plans if other.prefix == plan.prefix), None)
        if clash is not None:
            raise ConfigError(f"{name} and {clash} would name their tools alike ({plan.prefix}__…)")
        plans.append(plan)
    return plans


def prefix_of(name: str) -> str:
    """The prefix of a server's tool names: its name with every character but letters, digits, ``_`` and
    ``-`` made ``_`` (``github/acme/tools`` → ``github_acme_tools``)."""
    return _PREFIX_UNSAFE.sub("_", name)


def _custom(name: str, settings: dict[str, Any]) -> ServerPlan:
    parts = name.split("/")
    if (
        len(parts) != 3
        or not _OWNER.fullmatch(parts[1])
        or not _REPO.fullmatch(parts[2])
        or parts[2]
        in {
            ".",
            "..",
        }
    ):
        raise ConfigError(f"{name}: a custom server is named github/<owner>/<repository>")
    unknown = sorted(set(settings) - {"installCmd", "runCmd"})
    if unknown:
        listed = ", ".join(unknown)
        raise ConfigError(f"{name}: unknown settings {listed} (a custom server has installCmd and runCmd)")
    run_cmd = _text(name, "runCmd", settings.get("runCmd"))
    if run_cmd is None or not run_cmd.strip():
        raise ConfigError(f"{name}: runCmd (the command that starts a stdio MCP server) is required")
    install_cmd = _text(name, "installCmd", settings.get("installCmd"))
    return ServerPlan(
        name=name,
        prefix=prefix_of(name),
        command=["sh", "-c", run_cmd],
        repository=Repository(parts[1], parts[2]),
        install_cmd=install_cmd if install_cmd and install_cmd.strip() else None,
    )


def _from_catalog(name: str, settings: dict[str, Any], catalog: dict[str, dict[str, Any]]) -> ServerPlan:
    entry = catalog.get(name)
    if entry is None:
        raise ConfigError(
            f"{name}: not a server this gateway knows; available: {', '.join(sorted(catalog))}, "
            "or github/<owner>/<repository> with runCmd"
        )
    known: dict[str, dict[str, Any]] = entry["settings"]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        offered = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"{name}: unknown settings {', '.join(unknown)} (it takes: {offered})")
    command, env = list(entry["command"]), {}
    for key, rule in known.items():
        if key not in settings:
            if rule.get("required"):
                raise ConfigError(f"{name}: the setting {key} is required")
            continue
        values = _values(name, key, settings[key])
        if "most" in rule and len(values) > rule["most"]:
            most, package = rule["most"], entry["package"]
            raise ConfigError(f"{name}: {key} takes at most {most} value(s) ({package} serves one)")
        if "env" in rule:
            env[rule["env"]] = ",".join(values)
        elif "flag" in rule:
            for value in values:
                command += [rule["flag"], value]
        else:
            command += values
    return ServerPlan(name=name, prefix=prefix_of(name), command=command, env=env)


def _values(name: str, key: str, value: Any) -> list[str]:
    """A setting as strings: a string, number or boolean is one; a list of them, each."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ConfigError(f"{name}: {key} is empty")
    texts = []
    for item in items:
        if isinstance(item, bool):
            texts.append("true" if item else "false")
        elif isinstance(item, (str, int, float)):
            texts.append(_text(name, key, str(item)) or "")
        else:
            raise ConfigError(f"{name}: {key} must be a string, a number, a boolean or a list of them")
    return texts


def _text(name: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name}: {key} must be a string")
    if len(value) > MAX_VALUE_CHARS or "\0" in value:
        raise ConfigError(f"{name}: {key} is longer than {MAX_VALUE_CHARS} characters or holds a NUL")
    return value
