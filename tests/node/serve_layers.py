"""A node that only hands out layers, for tests/node/test_layers.py: run in a mount namespace of its own
in which the template cache is another directory, as on another machine. Usage:
``python serve_layers.py CATALOG_URL CACHE_DIR OWN_CACHE PORT KEY``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import uvicorn

from hutch.catalog import Catalog
from hutch.node.api import Admission, Capacity, Templates, create_node_app
from hutch.node.archives import ArchiveFetcher
from hutch.node.layers import LayerCopier
from hutch.runtime.fake import FakeRuntime


async def main(url: str, cache: str, own: str, port: int, key: str) -> None:
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "--bind", own, cache], check=True)
    catalog = await Catalog.open(url)
    runtime = FakeRuntime(node_id="holder")
    fetcher = ArchiveFetcher(key)
    copier = LayerCopier(
        catalog, node_id="holder", cache_dir=Path(cache), data_dir=Path(cache), fetcher=fetcher
    )
    templates = Templates(catalog, Path(cache), Path(cache), copier, fetcher, None)
    app = create_node_app(
        runtime, key=key, admission=Admission(runtime, Capacity(1, 1, 1), 1), templates=templates
    )
    await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).serve()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]))
