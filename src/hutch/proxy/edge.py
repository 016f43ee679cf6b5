"""The TLS edge as a child process of ``hutch up``: HAProxy in master-worker foreground mode
(``haproxy -W -db -f <data_dir>/edge/haproxy.cfg``), started again whenever it exits.

``start`` readies the certificate (the operator's, or one the local authority signs: :mod:`.certificates`),
writes the configuration (:mod:`.haproxy`) and the route maps (:mod:`.routes`), has HAProxy check them,
starts it and waits until it completes a TLS handshake. At every start, first or again, the maps are
written from the route table, and given to HAProxy once more as soon as its admin socket answers, so that
no route changed meanwhile is lost. HAProxy is started through ``setpriv --pdeathsig KILL``, so that the
kernel kills it when ``hutch up`` dies however it dies (its workers follow their master). ``stop`` sends
SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`. HAProxy logs warnings and errors to
``<data_dir>/edge/haproxy.log``, which is moved to ``haproxy.log.1`` at a start when it has grown past
:data:`MAX_LOG_BYTES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import resource
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

from ..config import Settings
from ..private_files import FILE_MODE, private_directory, write_private
from . import certificates, haproxy
from .children import Supervised
from .routes import EdgeRoutes

CONFIG_FILE = "haproxy.cfg"
LOG_FILE = "haproxy.log"
OPERATOR_PEM = "operator.pem"
MAX_LOG_BYTES = 1 << 20
START_TIMEOUT_S = 15
STOP_TIMEOUT_S = 5
log = logging.getLogger(__name__)
# The user HAProxy's workers run as, where the package made it.
HAPROXY_USER = "haproxy"


class EdgeUnavailable(Exception):
    """HAProxy is not installed, refused its configuration, or did not start."""


def haproxy_binary() -> str | None:
    """The path of ``haproxy`` (Debian puts it in ``/usr/sbin``, which may not be on ``PATH``)."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def certificate_for(settings: Settings) -> certificates.EdgeCertificate:
    """The edge's certificate: the operator's (``proxy.tls_certificate`` and ``proxy.tls_key``, joined into
    one file), or the local authority's for the domain."""
    proxy = settings.proxy
    if proxy.tls_certificate is not None or proxy.tls_key is not None:
        if proxy.tls_certificate is None or proxy.tls_key is None:
            raise EdgeUnavailable("proxy.tls_certificate and proxy.tls_key are given together")
        pem = private_directory(settings.data_dir / "edge") / OPERATOR_PEM
        chain = proxy.tls_certificate.read_text().rstrip("\n")
        write_private(pem, f"{chain}\n{proxy.tls_key.read_text().rstrip()}\n")
        return certificates.EdgeCertificate(pem_path=pem, ca_path=None)
    return certificates.ensure(settings.tls_dir, certificates.host_of(proxy.domain))


class EdgeProcess(Supervised):
    """``await start()`` starts HAProxy and waits until it serves, then keeps it running;
    ``await stop()`` stops it."""

    name = "haproxy"
    stop_timeout_s = STOP_TIMEOUT_S

    def __init__(self, settings: Settings, binary: str, routes: EdgeRoutes) -> None:
        super().__init__()
        self.settings = settings
        self.binary = binary
        self.routes = routes
        self.directory = routes.directory
        self.config_path = self.directory / CONFIG_FILE
        self.log_path = self.directory / LOG_FILE
        self._resyncing: asyncio.Task[None] | None = None

    async def start(self) -> certificates.EdgeCertificate:
        """Start HAProxy; the certificate it serves. :class:`EdgeUnavailable` if it cannot."""
        private_directory(self.directory)
        try:
            certificate = await asyncio.to_thread(certificate_for, self.settings)
        except OSError as err:
            raise EdgeUnavailable(f"no certificate for the edge: {err}") from err
        user = _existing_user(HAPROXY_USER) if os.geteuid() == 0 else None
        _allow_files(haproxy.files_needed(haproxy.MAX_CONNECTIONS))  # inherited by HAProxy, if it may
        config = haproxy.from_settings(
            self.settings,
            certificate.pem_path,
            self.routes,
            ipv6=_has_ipv6_loopback(),
            user=user,
            file_limit=_file_limit(),
        )
        write_private(self.config_path, haproxy.render(config))
        self.routes.write_files()
        checked = await asyncio.to_thread(
            subprocess.run,
            [self.binary, "-c", "-q", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
        )
        if checked.returncode != 0:
            raise EdgeUnavailable(
                f"haproxy refused its configuration: {(checked.stderr or checked.stdout).strip()}"
            )
        process = await self._spawn()
        await self._wait_serving(process, config)
        if self._resyncing is not None:
            await self._resyncing
        self._keep_running()
        return certificate

    async def stop(self) -> None:
        await self._stop_child()
        if self._resyncing is not None:
            self._resyncing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resyncing

    async def _spawn(self) -> asyncio.subprocess.Process:
        _rotate(self.log_path)
        self.routes.write_files()
        setpriv = shutil.which("setpriv")
        command = [self.binary, "-W", "-db", "-f", str(self.config_path)]
        if setpriv is not None:
            command = [setpriv, "--pdeathsig", "KILL", "--", *command]
        descriptor = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.DEVNULL,
                stdout=descriptor,
                stderr=descriptor,
                # Its own process group: a terminal's Ctrl-C reaches `hutch up`, which stops it itself.
                process_group=0,
            )
        finally:
            os.close(descriptor)
        if self._resyncing is not None:
            self._resyncing.cancel()
        self._resyncing = asyncio.ensure_future(self._resync(self._process))
        return self._process

    async def _resync(self, process: asyncio.subprocess.Process) -> None:
        """Give the new HAProxy the route table as soon as its admin socket answers."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.returncode is None and time.monotonic() < deadline:
            if await self.routes.resync():
                return
            await asyncio.sleep(0.05)
        log.warning("HAProxy (pid %d) did not take the edge's routes: it serves from its files", process.pid)

    async def _wait_serving(self, process: asyncio.subprocess.Process, config: haproxy.EdgeConfig) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        host = haproxy.local_address(config.listen[0])
        while time.monotonic() < deadline:
            if process.returncode is not None:
                break
            if await _handshakes(host, config.port, config.api_host):
                return
            await asyncio.sleep(0.05)
        if process.returncode is None:
            process.kill()
            await process.wait()
        tail = self.log_path.read_text(errors="replace")[-2000:].strip()
        raise EdgeUnavailable(f"haproxy did not start (exit status {process.returncode}): {tail}")


async def _handshakes(host: str, port: int, server_name: str) -> bool:
    """Whether a TLS handshake with the edge completes (its certificate is not checked here)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=server_name), 2
        )
    except (OSError, ssl.SSLError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _file_limit() -> int | None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return None if hard == resource.RLIM_INFINITY else hard


def _allow_files(needed: int) -> None:
    """Raise this process's hard file limit to ``needed`` if it is lower and the process may (root with
    ``CAP_SYS_RESOURCE``); the edge's connection bound then follows whatever limit there is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= needed:
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, needed))


def _existing_user(name: str) -> str | None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return None
    return name


def _rotate(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > MAX_LOG_BYTES:
            os.replace(path, path.with_name(f"{path.name}.1"))
