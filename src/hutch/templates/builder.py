"""The template builder: a base image, then each step in a sandbox of the runtime, each step's changes a
cached layer.

A build starts from a base (an existing template's layers, a Debian-family image built with mmdebstrap, or
an image from a registry; image bases get the default user ``user``). Then, for every step that changes
files, its layer key is computed from the key below it, the step and the build's state (env, user,
workdir); the first key above the base names the team, and a ``COPY`` step's key has the server's digest
of its archive, so keys are never shared across teams nor trusted to a client's files hash. A cached layer
is reused as it is; otherwise a sandbox is started over the layers so far, the
step runs in it (``RUN`` through envd as the step's user, ``COPY`` by unpacking the uploaded archive
inside the sandbox), and the sandbox's writable layer becomes the new layer. A step's ``force`` (or the
build's) rebuilds it and every later step. Last, a template with a start or ready command is started once
to check that it becomes ready. Failures are ``BuildFailed`` naming the step (``base``, its index, or
``finalize``).

What a step prints is bounded (``BuildOutput``): each line to a length, the build's entries to a count and
a rate; what is dropped is counted and said once in the log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from ..config import Settings
from ..errors import HutchError
from ..runtime import envd_client
from ..runtime.base import Runtime
from ..runtime.capabilities import SupportsCommit
from ..runtime.linux import detach, mount
from ..runtime.safe_path import copy_tree
from ..runtime.types import ENVD_PORT, SandboxSpec, TemplateImage
from . import base, debian_images, garbage, layers
from . import oci_image as oci
from .layers import LayerStore
from .steps import COPY_ARCHIVE, State, Step, after, changes_files, run_user, script, user_script
from .uploads import UploadStore, digest_of

# What a build log entry is handed to: message, level (info, warn, error, debug), step.
Log = Callable[[str, str, str | None], None]
# ``e2bdev/base``, the SDK's default base image, is Hutch's own ``base`` template.
E2B_BASE_IMAGES = (
    "e2bdev/base",
    "e2bdev/base:latest",
    "docker.io/e2bdev/base",
    "docker.io/e2bdev/base:latest",
)
_SHELL = ("/bin/sh", "-c")
CA_BUNDLE = "/tmp/.hutch-build-ca.pem"
_CA_VARIABLES = (
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
)
_CHUNK = 1 << 20


class BuildRuntime(Runtime, SupportsCommit, Protocol):
    """A runtime that can also keep a sandbox's writable layer."""


class BuildFailed(HutchError):
    """A build that cannot finish; ``step`` is ``base``, a step's index, or ``finalize``."""

    def __init__(self, message: str, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class TemplateBase:
    """An existing template to build on: its layers and its state."""

    rootfs: str
    state: State


@dataclass(frozen=True)
class Plan:
    """One build: where it starts, its steps, and the commands its sandboxes start with."""

    build_id: str
    template_id: str
    team_id: str
    steps: list[Step]
    from_image: str | None = None
    from_template: TemplateBase | None = None
    credentials: oci.RegistryCredentials | None = None
    force: bool = False
    start_cmd: str | None = None
    ready_cmd: str | None = None
    cpu_count: int = 2
    memory_mb: int = 1024


@dataclass(frozen=True)
class Built:
    """What a build made: the layers (``rootfs``, top first, ``:``-joined) and the final state."""

    rootfs: str
    state: State


@dataclass(frozen=True)
class BuildSandboxes:
    """How the sandboxes that run build steps are made: disk size, egress, and the time a step may take."""

    disk_mb: int = 8192
    internet: bool = True
    allow_out: tuple[str, ...] = ()
    step_timeout_s: float = 3600.0
    insecure_registries: tuple[str, ...] = ()
    # Registries at internal addresses (loopback, private, link-local, the node's) that images may come from.
    internal_registries: tuple[str, ...] = ()
    # Certificates ``RUN`` steps trust besides the image's own (a network that inspects TLS has its own
    # authority): put in the sandbox for each step, named by the usual variables, gone from the layer.
    ca_bundle: Path | None = None


@dataclass(frozen=True)
class BuildOutput:
    """The bounds of what a build's steps print into its log: a line's length (longer ones are cut, with a
    marker), and how many lines one build keeps, in all and per second."""

    line_chars: int = 4096
    entries: int = 10_000
    entries_per_s: int = 200


class Builder:
    """Runs builds on ``runtime`` (which must be able to commit a sandbox's layer)."""

    def __init__(
        self,
        runtime: BuildRuntime,
        *,
        cache_dir: Path,
        data_dir: Path,
        uploads: UploadStore,
        base_rootfs: Path,
        sandboxes: BuildSandboxes,
        output: BuildOutput | None = None,
        max_parallel: int = 2,
    ) -> None:
        self.runtime = runtime
        self.cache_dir = Path(cache_dir)
        self.data_dir = Path(data_dir)
        self.layers = LayerStore(self.cache_dir)
        self.uploads = uploads
        self.base_rootfs = base_rootfs
        self.sandboxes = sandboxes
        self.output = output or BuildOutput()
        self._slots = asyncio.Semaphore(max_parallel)

    async def close(self) -> None:
        """Nothing to release: each call to a build sandbox's envd has a connection of its own."""

    async def build(self, plan: Plan, log: Log) -> Built:
        output = _Budget(log, self.output)
        try:
            async with self._slots:
                return await self._build(plan, log, output)
        finally:
            output.close()

    async def _build(self, plan: Plan, log: Log, output: _Budget) -> Built:
        chain, state, key = await self._base(plan, log, output)
        self._use(chain)
        key = layers.key(key, "team", plan.team_id)
        forced = plan.force
        for step in plan.steps:
            forced = forced or step.force
            if not changes_files(step):
                log(f"[{step.index}] {step.describe()}", "info", str(step.index))
                state = after(state, step)
                continue
            with ExitStack() as stack:
                archive, content = None, None
                if step.type == "COPY":
                    archive = stack.enter_context(self._archive(plan, step))
                    content = await asyncio.to_thread(digest_of, archive)
                key = layers.key(key, step.type, step.args, content, state.identity())
                if self.layers.has(key) and not forced:
                    log(f"[{step.index}] CACHED {step.describe()}", "info", str(step.index))
                else:
                    log(f"[{step.index}] {step.describe()}", "info", str(step.index))
                    await self._make_layer(plan, chain, state, key, _Work(step, archive, output))
            chain = [self.layers.path(key), *chain]
            self._use(chain)
            state = after(state, step)
        if len(layers.join(chain)) > layers.MAX_CHAIN_CHARS:
            chain = [await self._flatten(chain, key)]
            self._use(chain)
        built = Built(layers.join(chain), state)
        if plan.start_cmd or plan.ready_cmd:
            await self._finalize(plan, built, log)
        return built

    def _use(self, chain: list[Path]) -> None:
        """Mark the chain's layers and images as this installation's (what ``garbage.collect`` weighs)."""
        garbage.mark(self.cache_dir, self.data_dir, layers.join(chain))

    # -- the base ----------------------------------------------------------------------------------------

    async def _base(self, plan: Plan, log: Log, output: _Budget) -> tuple[list[Path], State, str]:
        """The chain, state and layer key a build starts from."""
        if plan.from_template is not None:
            chain = layers.split(plan.from_template.rootfs)
            log(f"FROM template ({len(chain)} layers)", "info", "base")
            return chain, plan.from_template.state, layers.key("template", layers.identity(chain))
        image = plan.from_image or "e2bdev/base"
        log(f"FROM {image}", "info", "base")
        if image in E2B_BASE_IMAGES:
            chain = [self.base_rootfs]
            return chain, State(), layers.key("template", layers.identity(chain))
        rootfs, state = await self._image(image, plan, output)
        chain = [rootfs]
        self._use(chain)
        key = layers.key("image", plan.team_id, layers.identity(chain))
        # Every image gets the default user (with passwordless sudo), as E2B's do.
        key = layers.key(key, "provision", state.identity())
        if not self.layers.has(key):
            await self._make_layer(plan, chain, replace(state, user="root"), key, _Work(None, None, output))
        return [self.layers.path(key), *chain], state, key

    async def _image(self, image: str, plan: Plan, output: _Budget) -> tuple[Path, State]:
        def line(message: str) -> None:
            output.emit(message, "debug", "base")

        debian = debian_images.parse(image)
        try:
            if debian is not None:
                return await asyncio.to_thread(debian_images.build, debian, self.cache_dir, log=line), State()
            rootfs = await asyncio.to_thread(
                oci.pull,
                image,
                self.cache_dir,
                credentials=plan.credentials,
                team_id=plan.team_id,
                insecure_registries=self.sandboxes.insecure_registries,
                internal_registries=self.sandboxes.internal_registries,
                log=line,
            )
        except HutchError as error:
            raise BuildFailed(f"base image {image}: {error.message}", "base") from error
        config = oci.image_config(rootfs)
        state = State(env=dict(config.env), workdir=config.workdir or None)
        return rootfs, state

    # -- steps -------------------------------------------------------------------------------------------

    async def _make_layer(self, plan: Plan, chain: list[Path], state: State, key: str, work: _Work) -> None:
        """Run ``work`` in a sandbox over ``chain`` and publish what it wrote as the layer ``key``."""
        label = work.label
        spec = SandboxSpec(
            template=TemplateImage(
                template_id=f"build-{plan.build_id}",
                rootfs=Path(layers.join(chain)),
                default_user="root",
                env=dict(state.env),
            ),
            cpu_count=plan.cpu_count,
            memory_mb=plan.memory_mb,
            disk_mb=self.sandboxes.disk_mb,
            allow_internet_access=self.sandboxes.internet,
            allow_out=self.sandboxes.allow_out,
        )
        try:
            handle = await self.runtime.create(spec)
        except HutchError as error:
            raise BuildFailed(f"could not start a build sandbox: {error.message}", label) from error
        committed = False
        try:
            host, port = handle.address(ENVD_PORT)
            url = f"http://{host}:{port}"
            await self._run_step(url, state, work)
            partial = self.layers.partial()
            try:
                await self.runtime.commit(handle.sandbox_id, partial)
                committed = True
                self.layers.publish(partial, key)
            except BaseException:
                self.layers.discard(partial)
                raise
        finally:
            if not committed:
                await self.runtime.kill(handle.sandbox_id)

    async def _run_step(self, url: str, state: State, work: _Work) -> None:
        step, label = work.step, work.label
        output = _Lines(work.output, label, self.output.line_chars)
        envs = dict(state.env)
        if step is None:
            command, user, shell = user_script("user", sudo=True), "root", _SHELL
        elif step.type == "RUN":
            command, user, shell = step.args[0], run_user(step, state), ("/bin/bash", "-l", "-c")
            envs.update(await self._trust(url))
        else:
            gzip = False
            if work.archive is not None:
                gzip = await self._upload(url, work.archive)
            command, user, shell = script(step, state, gzip=gzip), "root", _SHELL
        try:
            code = await envd_client.run(
                url,
                command,
                user=user,
                envs=envs,
                cwd=state.workdir if step is not None and step.type == "RUN" else None,
                shell=shell,
                timeout_s=self.sandboxes.step_timeout_s,
                on_output=output.feed,
            )
        except HutchError as error:
            raise BuildFailed(f"step {label} could not run: {error}", label) from error
        finally:
            output.close()
        if code != 0:
            what = "the image's provisioning" if step is None else f"step {label} ({step.describe()})"
            raise BuildFailed(f"{what} failed with exit code {code}", label)
        if CA_BUNDLE in envs.values():
            await envd_client.run(url, f"rm -f {CA_BUNDLE}", user="root", shell=_SHELL)

    async def _trust(self, url: str) -> dict[str, str]:
        """Put the configured certificates in the sandbox; the variables that point tools at them."""
        if self.sandboxes.ca_bundle is None:
            return {}
        await envd_client.upload(url, CA_BUNDLE, _chunks(self.sandboxes.ca_bundle))
        return dict.fromkeys(_CA_VARIABLES, CA_BUNDLE)

    def _archive(self, plan: Plan, step: Step) -> BinaryIO:
        """The step's archive, open: what is digested for its key is what is put in the sandbox."""
        assert step.files_hash is not None
        try:
            return self.uploads.open(plan.template_id, step.files_hash)
        except FileNotFoundError:
            raise BuildFailed(
                f"step {step.index}: the files of {step.args[0]!r} were not uploaded", str(step.index)
            ) from None

    async def _upload(self, url: str, archive: BinaryIO) -> bool:
        """Put the step's archive in the sandbox; returns whether it is gzip-compressed."""
        archive.seek(0)
        gzip = archive.read(2) == b"\x1f\x8b"
        archive.seek(0)
        await envd_client.upload(url, COPY_ARCHIVE, _read(archive))
        return gzip

    async def _flatten(self, chain: list[Path], key: str) -> Path:
        """One layer with the whole chain's content (when the chain is too long to mount)."""
        flat_key = layers.key(key, "flatten")
        if self.layers.has(flat_key):
            return self.layers.path(flat_key)
        partial = self.layers.partial()
        view = partial.with_name(partial.name + ".view")
        view.mkdir()
        try:
            mount("overlay", str(view), "overlay", 0, f"ro,lowerdir={layers.join(chain)}")
            try:
                await copy_tree(view, partial)
            except HutchError as error:
                raise BuildFailed(
                    f"flattening the template's layers failed: {error.message}", "finalize"
                ) from error
            finally:
                detach(str(view))
            return self.layers.publish(partial, flat_key)
        finally:
            view.rmdir()
            self.layers.discard(partial)

    async def _finalize(self, plan: Plan, built: Built, log: Log) -> None:
        """Start the template once, as its sandboxes will be, and wait until its ready command succeeds."""
        log("starting the template to check its start and ready commands", "info", "finalize")
        template = TemplateImage(
            template_id=f"build-{plan.build_id}",
            rootfs=Path(built.rootfs),
            default_user=built.state.user,
            default_workdir=built.state.workdir,
            env=dict(built.state.env),
            start_cmd=plan.start_cmd,
            ready_cmd=plan.ready_cmd,
        )
        spec = SandboxSpec(template=template, cpu_count=plan.cpu_count, memory_mb=plan.memory_mb)
        try:
            handle = await self.runtime.create(spec)
        except HutchError as error:
            raise BuildFailed(f"the template did not become ready: {error.message}", "finalize") from error
        await self.runtime.kill(handle.sandbox_id)
        log("the template is ready", "info", "finalize")


@dataclass(frozen=True)
class _Work:
    """What one build sandbox does: a step (None: the image's provisioning), its open archive for a
    ``COPY``, and where its output goes."""

    step: Step | None
    archive: BinaryIO | None
    output: _Budget

    @property
    def label(self) -> str:
        return "base" if self.step is None else str(self.step.index)


class _Budget:
    """A build's log for what its steps print: at most ``entries`` lines in all and ``entries_per_s`` in any
    second; the others are counted, and said once, at the end."""

    def __init__(self, log: Log, bounds: BuildOutput) -> None:
        self._log = log
        self._bounds = bounds
        self._kept = 0
        self._second = 0
        self._in_second = 0
        self.dropped = 0

    def accepting(self) -> bool:
        """Whether a line emitted now would be kept."""
        second = int(time.monotonic())
        if second != self._second:
            self._second, self._in_second = second, 0
        return self._kept < self._bounds.entries and self._in_second < self._bounds.entries_per_s

    def emit(self, message: str, level: str, step: str | None) -> None:
        if not self.accepting():
            self.dropped += 1
            return
        self._kept += 1
        self._in_second += 1
        self._log(message, level, step)

    def drop(self, count: int) -> None:
        self.dropped += count

    def close(self) -> None:
        if self.dropped:
            self._log(
                f"{self.dropped} lines of output were dropped (a build keeps {self._bounds.entries} lines, "
                f"at most {self._bounds.entries_per_s} a second)",
                "warn",
                None,
            )
            self.dropped = 0


class _Lines:
    """Splits a step's streamed output into lines of at most ``line_chars`` characters for the build's log
    (the rest of a longer line is dropped and the line marked). Holds at most one line's worth of pending
    text; while the log takes no lines, output is only counted."""

    def __init__(self, budget: _Budget, step: str, line_chars: int) -> None:
        self.budget = budget
        self.step = step
        self.line_chars = line_chars
        self.pending: list[str] = []
        self.size = 0
        self.cut = 0

    def feed(self, text: str) -> None:
        if not self.budget.accepting():
            ended = text.count("\n")
            if ended:
                self.budget.drop(ended)
                self.pending, self.size, self.cut = [], 0, 0
            self._add(text.rpartition("\n")[2])
            return
        *lines, last = text.split("\n")
        for line in lines:
            self._add(line)
            self._flush()
        self._add(last)

    def close(self) -> None:
        if self.pending or self.cut:
            self._flush()

    def _add(self, text: str) -> None:
        room = self.line_chars - self.size
        if len(text) > room:
            self.cut += len(text) - room
            text = text[:room]
        if text:
            self.pending.append(text)
            self.size += len(text)

    def _flush(self) -> None:
        line = "".join(self.pending).rstrip("\r")
        if self.cut:
            line += f" [... {self.cut} more characters cut]"
        self.pending, self.size, self.cut = [], 0, 0
        self.budget.emit(line, "info", self.step)


async def _read(archive: BinaryIO) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(archive.read, _CHUNK):
        yield chunk


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as archive:
        async for chunk in _read(archive):
            yield chunk


def build_sandboxes(settings: Settings) -> BuildSandboxes:
    """How the configured builder makes its sandboxes."""
    t = settings.templates
    return BuildSandboxes(
        disk_mb=t.build_disk_mb,
        internet=t.build_internet and not t.build_allow_out,
        allow_out=tuple(t.build_allow_out),
        step_timeout_s=t.build_step_timeout_s,
        insecure_registries=tuple(t.insecure_registries),
        internal_registries=tuple(t.internal_registries),
        ca_bundle=t.build_ca_bundle,
    )


def configured_builder(settings: Settings, runtime: Runtime, uploads: UploadStore) -> Builder:
    """The builder the settings describe, on ``runtime`` (which must be able to commit a layer)."""
    t = settings.templates
    return Builder(
        runtime,  # type: ignore[arg-type]
        cache_dir=t.cache_dir,
        data_dir=settings.data_dir,
        uploads=uploads,
        base_rootfs=base.rootfs_path(t.cache_dir),
        sandboxes=build_sandboxes(settings),
        output=BuildOutput(t.build_log_line_chars, t.build_log_entries, t.build_log_entries_per_s),
        max_parallel=t.max_parallel_builds,
    )
