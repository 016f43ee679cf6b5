"""Template build steps (E2B's ``TemplateStep``): checked, then folded into the build's state.

A build has a state: its environment (``ENV``), its user (``USER``) and its working directory
(``WORKDIR``). Each step but ``ENV`` also changes files; ``script`` gives the POSIX shell script that makes
those changes in the build sandbox (as root), except for ``RUN``, which runs the user's own command.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InvalidRequest

TYPES = ("COPY", "RUN", "ENV", "WORKDIR", "USER")
# What a ``$VAR`` in an ``ENV`` value sees when the build has not set it (the sandboxes' own PATH).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Where a ``COPY`` step's archive is put in the build sandbox, and unpacked, before its files are copied.
COPY_ARCHIVE = "/tmp/.hutch-copy.tar"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_USER_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\Z")
_OWNER = re.compile(r"[A-Za-z0-9_.-]{1,32}(:[A-Za-z0-9_.-]{1,32})?\Z")
_MODE = re.compile(r"0?[0-7]{3,4}\Z")
_HASH = re.compile(r"[0-9a-f]{64}\Z")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Step:
    """One step: ``index`` is its position in the request (what build errors name)."""

    index: int
    type: str
    args: tuple[str, ...]
    force: bool = False
    files_hash: str | None = None

    def describe(self) -> str:
        """The step as a Dockerfile-like line, for build logs."""
        return f"{self.type} {' '.join(self.args)}".strip()


@dataclass(frozen=True)
class State:
    """What the steps so far made of the environment, user and working directory."""

    env: Mapping[str, str] = field(default_factory=dict)
    user: str = "user"
    workdir: str | None = None

    def identity(self) -> dict[str, Any]:
        """The state as plain data (part of a layer's cache key)."""
        return {"env": sorted(self.env.items()), "user": self.user, "workdir": self.workdir}


def parse(raw: list[dict[str, Any]]) -> list[Step]:
    """The request's ``steps``, checked; a bad one is ``InvalidRequest`` naming it."""
    return [_parse_one(index, item) for index, item in enumerate(raw)]


def _parse_one(index: int, item: dict[str, Any]) -> Step:
    kind = item.get("type")
    args = item.get("args") or []
    if kind not in TYPES:
        raise InvalidRequest(f"step {index}: unknown type {kind!r}; known: {', '.join(TYPES)}")
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise InvalidRequest(f"step {index}: args must be a list of strings")
    if any("\x00" in arg for arg in args):
        raise InvalidRequest(f"step {index}: args must not contain NUL bytes")
    step = Step(index, kind, tuple(args), bool(item.get("force")), item.get("filesHash"))
    _CHECKS[kind](step)
    return step


def _fail(step: Step, problem: str) -> None:
    raise InvalidRequest(f"step {step.index} ({step.type}): {problem}")


def _check_copy(step: Step) -> None:
    if not 2 <= len(step.args) <= 4 or not step.args[0] or not step.args[1]:
        _fail(step, "args are [src, dest, owner?, mode?]")
    if not isinstance(step.files_hash, str) or not _HASH.match(step.files_hash):
        _fail(step, "filesHash must be 64 hexadecimal digits")
    owner = step.args[2] if len(step.args) > 2 else ""
    mode = step.args[3] if len(step.args) > 3 else ""
    if owner and not _OWNER.match(owner):
        _fail(step, f"invalid owner {owner!r}")
    if mode and not _MODE.match(mode):
        _fail(step, f"invalid mode {mode!r} (octal, like 0755)")
    if posixpath.isabs(step.args[0]) or ".." in step.args[0].split("/"):
        _fail(step, "src must be relative to the build context, without '..'")


def _check_run(step: Step) -> None:
    if not 1 <= len(step.args) <= 2 or not step.args[0].strip():
        _fail(step, "args are [command, user?]")
    if len(step.args) == 2 and step.args[1] and not _USER_NAME.match(step.args[1]):
        _fail(step, f"invalid user {step.args[1]!r}")


def _check_env(step: Step) -> None:
    if not step.args or len(step.args) % 2:
        _fail(step, "args are pairs [name, value, …]")
    for name in step.args[::2]:
        if not _ENV_NAME.match(name):
            _fail(step, f"invalid variable name {name!r}")


def _check_workdir(step: Step) -> None:
    if len(step.args) != 1 or not step.args[0]:
        _fail(step, "args are [path]")


def _check_user(step: Step) -> None:
    if not 1 <= len(step.args) <= 2 or not _USER_NAME.match(step.args[0]):
        _fail(step, "args are [name, 'true'?] with a valid user name")


_CHECKS = {
    "COPY": _check_copy,
    "RUN": _check_run,
    "ENV": _check_env,
    "WORKDIR": _check_workdir,
    "USER": _check_user,
}


def expand(value: str, env: Mapping[str, str]) -> str:
    """``$VAR`` and ``${VAR}`` in ``value`` replaced from ``env`` (unset: empty; PATH: the default)."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, DEFAULT_PATH if name == "PATH" else "")

    return _VARIABLE.sub(lookup, value)


def resolve_path(path: str, state: State) -> str:
    """An absolute path: a relative one is against the working directory (``/`` without one)."""
    return posixpath.normpath(posixpath.join(state.workdir or "/", path))


def after(state: State, step: Step) -> State:
    """The state once ``step`` ran."""
    if step.type == "ENV":
        env = dict(state.env)
        for name, value in zip(step.args[::2], step.args[1::2], strict=True):
            env[name] = expand(value, env)
        return replace(state, env=env)
    if step.type == "WORKDIR":
        return replace(state, workdir=resolve_path(step.args[0], state))
    if step.type == "USER":
        return replace(state, user=step.args[0])
    return state


def changes_files(step: Step) -> bool:
    return step.type != "ENV"


def run_user(step: Step, state: State) -> str:
    """Who runs a ``RUN`` step: its own user, else the build's current one."""
    return step.args[1] if len(step.args) > 1 and step.args[1] else state.user


def script(step: Step, state: State, *, gzip: bool = False) -> str:
    """The shell script (run as root) that makes a ``COPY``, ``WORKDIR`` or ``USER`` step's changes."""
    if step.type == "COPY":
        return _copy_script(step, state, gzip=gzip)
    if step.type == "WORKDIR":
        path = shlex.quote(resolve_path(step.args[0], state))
        return f"mkdir -p {path} && chown {shlex.quote(state.user)} {path}"
    if step.type == "USER":
        return user_script(step.args[0], sudo=len(step.args) > 1 and step.args[1] == "true")
    raise ValueError(f"{step.type} steps have no script")


def user_script(name: str, *, sudo: bool) -> str:
    """Create the user ``name`` unless it exists: ``useradd``, else busybox's ``adduser``, else entries
    written to ``/etc/passwd`` and ``/etc/group`` (an image with neither); with ``sudo``, passwordless
    sudo for it."""
    user = shlex.quote(name)
    lines = [
        "set -e",
        f"if ! id -u {user} >/dev/null 2>&1; then",
        "  if command -v useradd >/dev/null 2>&1; then",
        f"    useradd --create-home --shell /bin/bash {user}",
        f"  elif ! adduser -D -s /bin/sh {user} >/dev/null 2>&1; then",
        "    uid=1000",
        '    while grep -q "^[^:]*:[^:]*:$uid:" /etc/passwd; do uid=$((uid + 1)); done',
        f'    echo "{name}:x:$uid:$uid::/home/{name}:/bin/sh" >> /etc/passwd',
        f'    grep -q "^{name}:" /etc/group || echo "{name}:x:$uid:" >> /etc/group',
        f'    mkdir -p /home/{name} && chown "$uid:$uid" /home/{name}',
        "  fi",
        "fi",
    ]
    if sudo:
        lines += [
            "mkdir -p /etc/sudoers.d",
            f"echo {shlex.quote(f'{name} ALL=(ALL:ALL) NOPASSWD: ALL')} > /etc/sudoers.d/{user}",
            f"chmod 0440 /etc/sudoers.d/{user}",
        ]
    return "\n".join(lines)


def _copy_script(step: Step, state: State, *, gzip: bool) -> str:
    """Unpack the step's archive, then copy what ``src`` matches to ``dest`` as Docker's COPY does: a
    directory's contents into ``dest``; one file to ``dest`` (into it when it ends with ``/`` or is a
    directory); several matches into the directory ``dest``. Then chown (default: the build's user) and
    chmod what was copied."""
    src = step.args[0].rstrip("/") or "."
    dest = resolve_path(step.args[1], state) + ("/" if step.args[1].endswith("/") else "")
    owner = (step.args[2] if len(step.args) > 2 else "") or state.user
    mode = step.args[3] if len(step.args) > 3 else ""
    return _COPY_TEMPLATE.format(
        archive=COPY_ARCHIVE,
        tar_flags="-xzf" if gzip else "-xf",
        src=shlex.quote(src),
        dest=shlex.quote(dest),
        owner=shlex.quote(owner),
        chmod=f'chmod -R {mode} "$t"' if mode else ":",
        describe=shlex.quote(step.args[0]),
    )


# ``src`` is a glob, expanded by the shell (from an unquoted variable: globbing only, and no word splitting
# with a newline-only IFS) inside the unpacked archive. Each copied path is recorded, one per line, for the
# chown/chmod pass.
_COPY_TEMPLATE = """set -e
src={src}
staging=$(mktemp -d /tmp/.hutch-copy.XXXXXX)
tar {tar_flags} {archive} -C "$staging"
rm -f {archive}
dest={dest}
copied="$staging.list"
: > "$copied"
IFS='
'
cd "$staging"
count=0
for m in $src; do
  if [ -e "$m" ] || [ -L "$m" ]; then count=$((count + 1)); fi
done
if [ "$count" -eq 0 ]; then echo "COPY: nothing in the context matches "{describe} >&2; exit 1; fi
place() {{
  if [ -d "$1" ] && [ ! -L "$1" ]; then
    mkdir -p "$2"
    for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do
      if [ -e "$e" ] || [ -L "$e" ]; then
        name=${{e##*/}}; rm -rf "$2/$name"; cp -a "$e" "$2/$name"; echo "$2/$name" >> "$copied"
      fi
    done
    echo "$2" >> "$copied"
  else
    case "$2" in
      */) mkdir -p "$2"; target="$2${{1##*/}}" ;;
      *) if [ -d "$2" ]; then target="$2/${{1##*/}}"; else mkdir -p "$(dirname "$2")"; target="$2"; fi ;;
    esac
    rm -rf "$target"; cp -a "$1" "$target"; echo "$target" >> "$copied"
  fi
}}
for m in $src; do
  if [ -e "$m" ] || [ -L "$m" ]; then
    if [ "$count" -gt 1 ]; then case "$dest" in */) place "$m" "$dest" ;; *) place "$m" "$dest/" ;; esac
    else place "$m" "$dest"; fi
  fi
done
cd /
while read -r t; do chown -hR {owner} "$t"; {chmod}; done < "$copied"
rm -rf "$staging" "$copied"
"""
