"""Contexts: a kernel each, with its own state and working directory, and one default per language."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

from . import languages
from .kernel import Kernel, KernelStartError

log = logging.getLogger("hutch.interpreter")


class ContextNotFound(Exception):
    """No context has this id."""


class ContextStartError(Exception):
    """A context could not be created (unknown language, bad working directory, kernel failed)."""


class Context:
    def __init__(self, language: str, cwd: str) -> None:
        self.id = str(uuid.uuid4())
        self.language = language
        self.cwd = cwd
        self.kernel = Kernel(language, cwd)
        self._sandbox_vars: dict[str, str] = {}
        self._applied_generation = 0
        self._lock = asyncio.Lock()

    def describe(self) -> dict[str, str]:
        return {"id": self.id, "language": self.language, "cwd": self.cwd}

    async def execute(
        self, code: str, env_vars: dict[str, str], sandbox_vars: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        """Run ``code`` with the sandbox's variables and ``env_vars`` set; the latter only for this call."""
        async with self._lock:
            await self.kernel.settle()
            await self._apply_sandbox_vars(sandbox_vars)
            try:
                # inside the try: variables are restored even when the client goes away while they are set
                if env_vars:
                    await self.kernel.run_silent(languages.set_env_code(self.language, env_vars))
                async for line in self.kernel.execute(code):
                    yield line
            finally:
                if env_vars:
                    restore = self._restore_code(list(env_vars))
                    generation = self.kernel.generation

                    async def restore_vars() -> None:
                        if self.kernel.generation == generation:
                            await self.kernel.run_silent(restore)

                    self.kernel.later(restore_vars)

    async def restart(self) -> None:
        await self.kernel.restart()

    async def _apply_sandbox_vars(self, sandbox_vars: dict[str, str]) -> None:
        """Set the sandbox-level variables once per kernel."""
        if self._applied_generation == self.kernel.generation:
            return
        self._sandbox_vars = sandbox_vars
        if self._sandbox_vars:
            await self.kernel.run_silent(languages.set_env_code(self.language, self._sandbox_vars))
        self._applied_generation = self.kernel.generation

    def _restore_code(self, names: list[str]) -> str:
        """Code putting back what ``names`` were before a call: the sandbox's value, or nothing."""
        sandbox = self._sandbox_vars
        back = {name: sandbox[name] for name in names if name in sandbox}
        gone = [name for name in names if name not in sandbox]
        return "\n".join(
            code
            for code in (
                languages.set_env_code(self.language, back),
                languages.unset_env_code(self.language, gone),
            )
            if code
        )


class Contexts:
    """Every context of the server, by id, and the default context of each language."""

    def __init__(self, *, default_cwd: str) -> None:
        self.default_cwd = default_cwd
        self._contexts: dict[str, Context] = {}
        self._defaults: dict[str, str] = {}
        self._default_locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        """Start the default Python and JavaScript kernels, side by side, as E2B's server does: neither the
        first execution nor the list of contexts waits for them. JavaScript is optional."""
        others = [self._warm(languages.JAVASCRIPT)] if languages.kernel_command(languages.JAVASCRIPT) else []
        await asyncio.gather(self.default(languages.PYTHON), *others)

    async def _warm(self, language: str) -> None:
        try:
            await self.default(language)
        except ContextStartError as error:
            log.warning("the default %s context did not start: %s", language, error)

    async def close(self) -> None:
        await asyncio.gather(*(c.kernel.stop() for c in self._contexts.values()), return_exceptions=True)
        self._contexts.clear()
        self._defaults.clear()

    async def create(self, language: str | None, cwd: str | None) -> Context:
        name = languages.normalize(language)
        if languages.kernel_command(name) is None:
            raise ContextStartError(f"Failed to create context: no kernel for language '{name}'")
        directory = cwd or self.default_cwd
        if not os.path.isdir(directory):
            raise ContextStartError(f"Failed to set working directory: {directory} is not a directory")
        context = Context(name, directory)
        try:
            await context.kernel.start()
        except KernelStartError as exc:
            raise ContextStartError(f"Failed to create context: {exc}") from exc
        self._contexts[context.id] = context
        return context

    async def default(self, language: str | None) -> Context:
        """The language's default context, created on first use."""
        name = languages.normalize(language)
        async with self._default_locks.setdefault(name, asyncio.Lock()):
            context = self._contexts.get(self._defaults.get(name, ""))
            if context is None:
                context = await self.create(name, None)
                self._defaults[name] = context.id
            return context

    def get(self, context_id: str) -> Context:
        try:
            return self._contexts[context_id]
        except KeyError:
            raise ContextNotFound(f"Context {context_id} not found") from None

    def list(self) -> list[Context]:
        return list(self._contexts.values())

    async def remove(self, context_id: str) -> None:
        context = self.get(context_id)
        del self._contexts[context_id]
        with contextlib.suppress(Exception):
            await context.kernel.stop()
