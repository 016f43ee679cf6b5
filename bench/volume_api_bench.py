"""Volume content through the API with the official SDK: 64 MiB written with ``Volume.write_file`` and read
back with ``Volume.read_file`` (bytes and streamed), MB/s, and the small-file round trip.

Starts its own stack (``hutch up --detach`` with temporary data and the subnet 172.30.96.0/20 or
``--subnet``), so another stack on the machine is never touched; the volume is destroyed and the stack
stopped afterwards. The node-level numbers (``volume_write``/``volume_read`` and in-sandbox ``dd``) are
``bench/volume_bench.py``'s. Run as root: ``.venv/bin/python bench/volume_api_bench.py [--runs N] [--json]``.
"""

from __future__ import annotations

import argparse
import os
import uuid

from e2b import Volume
from measure import own_stack, report, throughput, timed

SUBNET = "172.30.96.0/20"
SIZE = 64 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--subnet", default=SUBNET)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seen: set[str] = set()
    settings = {
        "HUTCH_TEMPLATES__CODE_INTERPRETER": "false",
        "HUTCH_TEMPLATES__DESKTOP": "false",
        "HUTCH_TEMPLATES__MCP_GATEWAY": "false",
    }
    results: dict[str, object] = {}
    with own_stack(args.subnet, settings, seen) as opts:
        api = {"api_key": opts["api_key"], "api_url": opts["api_url"]}
        volume = Volume.create(f"bench-{uuid.uuid4().hex[:8]}", **api)
        content = {"api_url": opts["api_url"]}
        try:
            data = os.urandom(SIZE)
            volume.write_file("/blob.bin", data, **content)

            def read_stream() -> None:
                assert (
                    sum(len(chunk) for chunk in volume.read_file("/blob.bin", format="stream", **content))
                    == SIZE
                )

            results["write_file 64 MiB (synced)"] = throughput(
                lambda: volume.write_file("/blob.bin", data, **content), SIZE, args.runs
            )
            results["read_file 64 MiB (bytes)"] = throughput(
                lambda: volume.read_file("/blob.bin", format="bytes", **content), SIZE, args.runs
            )
            results["read_file 64 MiB (stream)"] = throughput(read_stream, SIZE, args.runs)
            small = b"x" * 1024
            results["write_file 1 KiB, ms"] = timed(
                lambda: volume.write_file("/small.txt", small, **content), 50
            )
            results["read_file 1 KiB, ms"] = timed(lambda: volume.read_file("/small.txt", **content), 50)
            results["get_info of a path, ms"] = timed(lambda: volume.get_info("/small.txt", **content), 50)
        finally:
            Volume.destroy(volume.volume_id, **api)
    report("Volume content through the API (official SDK)", results, as_json=args.json)


if __name__ == "__main__":
    main()
