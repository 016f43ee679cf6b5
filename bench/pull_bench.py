"""Benchmark what the pull gate costs: the same image pulled from a registry on this machine directly (a
registry the operator lists on loopback) and through the gate (the same registry at an address of a veth
of the benchmark's own, which pulls reach only through the gate in their own network namespace).

Needs root, Debian's ``docker-registry``, ``skopeo`` and ``umoci``. Each pull goes to an empty cache, so
every run copies and unpacks the image. ``python bench/pull_bench.py [--runs 10] [--size-mib 4] [--json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from measure import report, summary

from hutch.templates.oci_image import pull

HOST_IP = "10.248.0.1"
NETNS, HOST_IF = "hutch-pull-bench", "hpb0"


@contextlib.contextmanager
def _host_address() -> Iterator[None]:
    """``HOST_IP`` on the host's end of a veth to a namespace of the benchmark's own (removed afterwards)."""
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    run(["ip", "netns", "add", NETNS])
    try:
        run(["ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", "eth0", "netns", NETNS])
        run(["ip", "address", "add", f"{HOST_IP}/30", "dev", HOST_IF])
        run(["ip", "link", "set", HOST_IF, "up"])
        yield
    finally:
        subprocess.run(["ip", "link", "del", HOST_IF], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", NETNS], check=False, capture_output=True)


def _registry(root: Path, address: str, port: int) -> subprocess.Popen[bytes]:
    root.mkdir()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'storage'}}}}}\n"
        f"http: {{addr: '{address}:{port}'}}\n"
    )
    return subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL)


def _image(work: Path, size_mib: int) -> str:
    """An OCI image of two files in one layer (one of ``size_mib`` random MiB) in ``work``: skopeo's
    ``oci:`` name of it."""
    layout, bundle = work / "layout", work / "bundle"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:1"], check=True)
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:1", str(bundle)], check=True, capture_output=True
    )
    (bundle / "rootfs/etc").mkdir(parents=True, exist_ok=True)
    (bundle / "rootfs/etc/hello.txt").write_text("hello\n")
    (bundle / "rootfs/blob").write_bytes(os.urandom(size_mib << 20))
    subprocess.run(["umoci", "repack", "--image", f"{layout}:1", str(bundle)], check=True)
    return f"{layout}:1"


def _timed_pulls(name: str, listed: str, runs: int) -> dict:
    samples = []
    for _ in range(runs):
        cache = Path(tempfile.mkdtemp(prefix="hutch-pull-bench-"))
        try:
            started = time.perf_counter()
            pull(
                name,
                cache,
                log=lambda _line: None,
                internal_registries=(listed,),
                insecure_registries=(listed,),
            )
            samples.append((time.perf_counter() - started) * 1000)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    return summary(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--port", type=int, default=5077)
    parser.add_argument("--size-mib", type=int, default=4, help="the image's size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hutch-pull-bench-"))
    results: dict[str, object] = {}
    try:
        image = _image(work, args.size_mib)
        with _host_address():
            registries = [
                _registry(work / name, address, args.port)
                for name, address in (("lo", "127.0.0.1"), ("veth", HOST_IP))
            ]
            try:
                time.sleep(1)
                for address in ("127.0.0.1", HOST_IP):
                    destination = f"docker://{address}:{args.port}/bench/image:1"
                    subprocess.run(
                        ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{image}", destination],
                        check=True,
                        capture_output=True,
                    )
                for label, address in (
                    ("direct (listed loopback registry)", "127.0.0.1"),
                    ("through the gate", HOST_IP),
                ):
                    registry = f"{address}:{args.port}"
                    results[label] = _timed_pulls(f"{registry}/bench/image:1", registry, args.runs)
            finally:
                for registry in registries:
                    registry.terminate()
                    registry.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(f"image pull ({args.size_mib} MiB, one layer), ms", results, as_json=args.json, width=36)


if __name__ == "__main__":
    main()
