"""Benchmark template builds through the official SDK's ``Template`` on a Hutch stack of its own.

The template: the ``base`` template, one ``COPY`` of a small directory and one ``pip_install``. Measured:

* a cold build (``skip_cache``: every layer built, the package downloaded from PyPI in a build sandbox);
* a fully cached rebuild of the same template (median of ``--runs``), the goal being ≤ 2 s;
* ``Sandbox.create()`` from the new template until a first command that imports the package returns.

Build sandboxes reach PyPI through ``--uplink`` (default: the interface of the default route), allowed
only the names ``pypi.org`` and ``files.pythonhosted.org``; ``--ca-bundle`` (default: the host's bundle)
is trusted in the build steps, for networks that inspect TLS.

``python bench/template_bench.py [--package httpx==0.28.1] [--runs 5] [--json]``
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

from e2b import Sandbox, Template
from measure import own_stack, report, summary

SUBNET = "10.18.0.0/16"
PYPI = ["pypi.org", "files.pythonhosted.org"]


def template(context: Path, package: str) -> Template:
    return (
        Template(file_context_path=context).from_template("base").copy("app", "/app").pip_install([package])
    )


def timed_build(context: Path, package: str, name: str, opts: dict, **options: object) -> float:
    began = time.perf_counter()
    Template.build(template(context, package), name, **opts, **options)
    return (time.perf_counter() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--package", default="httpx==0.28.1")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--uplink", default=None)
    parser.add_argument("--ca-bundle", default="/etc/ssl/certs/ca-certificates.crt")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    context = Path(tempfile.mkdtemp(prefix="hutch-template-bench-"))
    (context / "app").mkdir()
    (context / "app" / "main.py").write_text(f"print({secrets.token_hex(8)!r})\n")
    settings: dict[str, object] = {
        "HUTCH_RUNTIME__EGRESS_INTERFACE": args.uplink or "auto",
        "HUTCH_RUNTIME__WARM_POOL": {"base": 1},
        "HUTCH_TEMPLATES__CODE_INTERPRETER": "false",
        "HUTCH_TEMPLATES__BUILD_ALLOW_OUT": PYPI,
        "HUTCH_TEMPLATES__BUILD_CA_BUNDLE": args.ca_bundle,
    }
    seen: set[str] = set()
    name = f"bench-{secrets.token_hex(4)}"
    module = args.package.split("==")[0].replace("-", "_")
    with own_stack(SUBNET, settings, seen) as opts:
        cold = timed_build(context, args.package, name, opts, skip_cache=True)
        cached = [timed_build(context, args.package, name, opts) for _ in range(args.runs)]
        began = time.perf_counter()
        sandbox = Sandbox.create(name, **opts)
        seen.add(sandbox.sandbox_id)
        check = sandbox.commands.run(f"python3 -c 'import {module}' && python3 /app/main.py")
        first_command = (time.perf_counter() - began) * 1000
        sandbox.kill()
    assert check.exit_code == 0
    results = {
        "cold build (COPY + pip_install), ms": round(cold, 1),
        "cached rebuild, ms": summary(cached, 1),
        "create from it → first command, ms": round(first_command, 1),
    }
    report(f"template build of base + COPY + pip_install({args.package})", results, as_json=args.json)


if __name__ == "__main__":
    main()
