"""``python -m hutch.proxy``: the data-plane proxy as a process of its own.

It reads the usual settings (``HUTCH_*``, ``HUTCH_CONFIG``), resolves sandboxes through the catalog (SQLite
in WAL mode or PostgreSQL, both shared with the API's process) and, in local development mode only, the
SDK's debug id through the file ``hutch up`` publishes (:mod:`.debug`). It binds
``settings.proxy.host``/``port``, unless ``--fd`` hands it a listening socket (``hutch up`` does:
:mod:`.supervisor`, with ``--hints-fd``, the socket its API sends route hints on: :mod:`.hints`). SIGTERM or
SIGINT stops it gracefully.

It imports only the proxy, the settings and the catalog: no API, no runtime. To resume a paused sandbox
created with ``autoResume`` it asks the node's API (where it listens, with the node key). ``hutch proxy``
runs it as a cluster's proxy (:func:`serve` with ``cluster``).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from ..catalog import Catalog
from ..config import Settings
from ..secret_files import NODE_KEY_HEADER, node_key
from .debug import DebugSandbox, path_in
from .hints import follow as follow_hints
from .resolver import CatalogResolver, NodeDirectory
from .routing import CLUSTER_KEY_HEADER
from .server import create_server
from .waker import Waker

_PR_SET_PDEATHSIG = 1
# One line per record, marked as the proxy's: under `hutch up` it shares the log with the API.
_LOG_FORMAT = "%(asctime)s %(levelname)s proxy[%(process)d] %(name)s: %(message)s"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hutch.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="the node's data directory (default: the settings')")
    parser.add_argument("--fd", type=int, help="serve this inherited listening socket instead of binding")
    parser.add_argument("--parent", type=int, help="exit when the process with this pid exits")
    parser.add_argument("--hints-fd", type=int, help="read route hints from this inherited datagram socket")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.parent is not None:
        _die_with(args.parent)
    logging.basicConfig(level=args.log_level.upper(), format=_LOG_FORMAT)
    settings = Settings(data_dir=args.data_dir) if args.data_dir else Settings()
    listener = socket.socket(fileno=args.fd) if args.fd is not None else None
    hints = socket.socket(fileno=args.hints_fd) if args.hints_fd is not None else None
    asyncio.run(serve(settings, listener, hints=hints))


async def serve(
    settings: Settings,
    listener: socket.socket | None = None,
    *,
    cluster: bool = False,
    hints: socket.socket | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, on ``listener`` if given. With ``cluster`` (``hutch proxy``), each
    sandbox is reached through its node's traffic listener, and paused ones are woken through an API
    replica (``cluster.api_url``), both with the cluster secret."""
    if cluster:
        key = settings.cluster.key()
        catalog = await Catalog.open(settings.catalog_url)
        nodes: NodeDirectory | None = NodeDirectory(catalog, key)
        waker = Waker(settings.cluster.api_url, lambda: {CLUSTER_KEY_HEADER: key})
    else:
        catalog = await Catalog.open(settings.catalog_url, migrate=False)  # the main process migrates
        api_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.api.host, settings.api.host)
        netloc = f"[{api_host}]:{settings.api.port}" if ":" in api_host else f"{api_host}:{settings.api.port}"
        nodes = None
        waker = Waker(f"http://{netloc}", lambda: {NODE_KEY_HEADER: node_key(settings.data_dir)})
    try:
        debug = DebugSandbox(path_in(settings.data_dir)) if settings.proxy.local_development else None
        resolver = CatalogResolver(catalog, debug=debug, wake=waker, nodes=nodes)
        if hints is not None:
            follow_hints(hints, resolver)
        server = create_server(settings.proxy, resolver)
        gc.freeze()  # what lives as long as the process is out of the collector's way
        await server.serve(sockets=[listener] if listener is not None else None)
    finally:
        await waker.aclose()
        await catalog.close()


def _die_with(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies, however it dies (``kill -9`` included),
    so that no proxy outlives ``hutch up`` holding the port. If the parent is already gone (it died while
    this process started, before the request took effect), exit now."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        sys.exit("hutch.proxy: the process that started it has exited")


if __name__ == "__main__":
    main()
