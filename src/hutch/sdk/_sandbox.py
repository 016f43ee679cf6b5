"""``hutch.Sandbox`` and ``hutch.AsyncSandbox``: the official classes, configured from Hutch's settings.

Every class-level call of the official SDK (``create``, ``connect``, ``list``, ``kill(sandbox_id)``...)
resolves its connection parameters through ``_resolve_api_params``, the hook an ``e2b.E2B`` client binds its
own parameters with; overriding it is all the configuration needs. A sandbox keeps the parameters it was
created with, so its own calls (``sandbox.kill()``, ``sandbox.commands``...) use them too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Unpack

import e2b
from e2b import ApiParams

from ._legacy import FilesystemManager, ProcessManager
from ._legacy_async import AsyncFilesystemManager, AsyncProcessManager
from ._settings import resolve


class Sandbox(e2b.Sandbox):
    """The official ``e2b.Sandbox``, configured from the environment and ``.env.local``.

    Settings come from the call's arguments, then the environment, then the nearest ``.env.local`` in the
    current directory or its parents. The seed's debug-mode settings (``E2B_DEBUG=true``) become real
    per-call sandboxes when a Hutch API answers at ``E2B_API_URL``, reached through the proxy at
    ``E2B_SANDBOX_URL`` (default ``http://localhost:49983``). Without an API key, calls fail with an
    ``e2b.AuthenticationException`` that says to run ``hutch up``. ``process`` and ``filesystem`` keep the
    seed's legacy calls working.

    Example:
    ```python
    import hutch

    with hutch.Sandbox.create() as sandbox:
        print(sandbox.commands.run("echo hello").stdout)
    ```
    """

    @classmethod
    def _resolve_api_params(cls, **opts: Unpack[ApiParams]) -> ApiParams:
        return resolve(super()._resolve_api_params(**opts), environ=os.environ, cwd=Path.cwd())

    @property
    def process(self) -> ProcessManager:
        """Legacy: ``start(cmd)`` and ``start_and_wait(cmd)`` over ``sandbox.commands``."""
        return ProcessManager(self)

    @property
    def filesystem(self) -> FilesystemManager:
        """Legacy: ``write``, ``read`` and ``list`` over ``sandbox.files``."""
        return FilesystemManager(self)


class AsyncSandbox(e2b.AsyncSandbox):
    """The official ``e2b.AsyncSandbox``, configured like ``hutch.Sandbox``; its legacy calls are awaitable.

    Example:
    ```python
    import hutch

    async with await hutch.AsyncSandbox.create() as sandbox:
        print((await sandbox.commands.run("echo hello")).stdout)
    ```
    """

    @classmethod
    def _resolve_api_params(cls, **opts: Unpack[ApiParams]) -> ApiParams:
        return resolve(super()._resolve_api_params(**opts), environ=os.environ, cwd=Path.cwd())

    @property
    def process(self) -> AsyncProcessManager:
        """Legacy: awaitable ``start(cmd)`` and ``start_and_wait(cmd)`` over ``sandbox.commands``."""
        return AsyncProcessManager(self)

    @property
    def filesystem(self) -> AsyncFilesystemManager:
        """Legacy: awaitable ``write``, ``read`` and ``list`` over ``sandbox.files``."""
        return AsyncFilesystemManager(self)
