"""The base template is cached per recipe: any change to it builds a new base, and every built-in template
made from base gets a new fingerprint (so it is rebuilt too); the login-file script edits what it must and
fails on a Debian that words those lines otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from hutch.templates import base, code_interpreter, desktop, mcp_gateway

PROFILE = """\
if [ "$(id -u)" -eq 0 ]; then
  PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
else
  PATH="/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
fi
export PATH
if [ "${PS1-}" ]; then
  if [ "${BASH-}" ] && [ "$BASH" != "/bin/sh" ]; then
    :
  else
    if [ "$(id -u)" -eq 0 ]; then
      PS1='# '
    else
      PS1='$ '
    fi
  fi
fi
"""
ROOT_PATH, USER_PATH = "/usr/local/sbin:/usr/local/bin:", "/usr/local/bin:/usr/bin:/bin:/usr/local/games:"
ROOT_PROFILE = 'if [ "$BASH" ]; then\n  :\nfi\n\nmesg n 2> /dev/null || true\n'
BASH_LOGOUT = (
    'if [ "$SHLVL" = 1 ]; then\n    [ -x /usr/bin/clear_console ] && /usr/bin/clear_console -q\nfi\n'
)


def _fingerprints() -> dict[str, str]:
    return {
        "base": base.fingerprint(),
        "code-interpreter packages": code_interpreter.packages_fingerprint(),
        "code-interpreter": code_interpreter.fingerprint(),
        "desktop": desktop.fingerprint(),
        "mcp-gateway": mcp_gateway.fingerprint(),
    }


@pytest.mark.parametrize("part", ["SUITE", "MIRRORS", "PACKAGES", "CUSTOMIZE", "CLEANUP"])
def test_a_changed_recipe_changes_base_and_every_template_over_it(monkeypatch, part):
    before = _fingerprints()
    value = getattr(base, part)
    monkeypatch.setattr(base, part, "trixie" if isinstance(value, str) else [*value, "changed"])
    after = _fingerprints()
    assert [name for name in before if before[name] == after[name]] == []


def test_a_changed_login_script_changes_base(monkeypatch, tmp_path):
    before = _fingerprints()
    script = tmp_path / "login_profile.sh"
    script.write_bytes(base.LOGIN_PROFILE.read_bytes() + b"\n# changed\n")
    monkeypatch.setattr(base, "LOGIN_PROFILE", script)
    after = _fingerprints()
    assert [name for name in before if before[name] == after[name]] == []


def test_the_same_recipe_keeps_its_fingerprint_and_path():
    assert base.fingerprint() == base.fingerprint()
    cache = Path("/var/cache/hutch")
    assert base.rootfs_path(cache) == cache / "templates" / "base" / base.fingerprint()[:16] / "rootfs"


def test_build_reuses_the_cached_base_and_builds_anew_for_another_recipe(monkeypatch, tmp_path):
    built: list[Path] = []

    def mmdebstrap(command: list[str], log) -> None:
        target = Path(command[-1 - len(base.MIRRORS)])
        target.mkdir(parents=True)
        built.append(target)

    monkeypatch.setattr(base, "run_logged", mmdebstrap)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    first = base.build(tmp_path, log=lambda line: None)
    assert first.is_dir() and len(built) == 1
    assert base.build(tmp_path, log=lambda line: None) == first and len(built) == 1  # cached
    monkeypatch.setattr(base, "PACKAGES", [*base.PACKAGES, "jq"])
    second = base.build(tmp_path, log=lambda line: None)
    assert second != first and second.is_dir() and first.is_dir() and len(built) == 2


def _login_files(root: Path) -> None:
    for name, text in (("etc/profile", PROFILE), ("root/.profile", ROOT_PROFILE),
                       ("etc/skel/.bash_logout", BASH_LOGOUT)):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def _run_script(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(base.LOGIN_PROFILE), str(root)], capture_output=True, text=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the profile as root and as nobody")
def test_the_login_script_asks_the_shell_for_root_in_bash_and_sh(tmp_path):
    # the profile where ``nobody`` may read it (tmp_path's parents are root's alone)
    with tempfile.TemporaryDirectory() as readable:
        root = Path(readable)
        root.chmod(0o755)
        _login_files(root)
        assert _run_script(root).returncode == 0
        profile = (root / "etc/profile").read_text()
        assert profile.count("if [ -O / ]; then") == 2 and "id -u" not in profile
        assert "if [ -t 0 ] || [ -t 1 ] || [ -t 2 ]; then mesg n" in (root / "root/.profile").read_text()
        assert "; then [ -x /usr/bin/clear_console ]" in (root / "etc/skel/.bash_logout").read_text()

        def path_after_profile(shell: str, uid: int) -> str:
            # an ``id`` that lies and a tenant's EUID=0: neither is asked
            script = f'PATH=/usr/bin:/bin; id() {{ echo 0; }}; . {root}/etc/profile; echo "$PATH"'
            done = subprocess.run(
                [shell, "-c", script], capture_output=True, text=True, check=True, user=uid, env={"EUID": "0"}
            )
            return done.stdout

        for shell in ("bash", "sh"):
            assert path_after_profile(shell, 0).startswith(ROOT_PATH), shell
            assert path_after_profile(shell, 65534).startswith(USER_PATH), shell


def test_the_login_script_fails_on_lines_it_does_not_know(tmp_path):
    _login_files(tmp_path)
    (tmp_path / "etc/profile").write_text(PROFILE.replace('"$(id -u)"', '"$(id -ru)"'))
    done = _run_script(tmp_path)
    assert done.returncode != 0 and "etc/profile has no single line" in done.stderr
