"""The control plane's composition root: :func:`create_app` wires settings, catalog, the nodes (in
process over this machine's runtime, or a cluster's over the network), services, routes, error handlers
and the background duties (the timeout reaper; in a cluster, marking silent nodes lost) into one FastAPI
app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from ..catalog import Catalog
from ..config import Settings
from ..runtime.node_client import LocalNode, NodeClient, Nodes, Runtime, SupportsCommit
from ..secret_files import operator_key
from ..templates.builder import Builder, build_sandboxes, configured_builder
from ..templates.uploads import UploadStore
from . import errors, openapi
from .body_limit import BodyLimit
from .dashboard import routes as dashboard
from .ratelimit import RateLimiter
from .reaper import Reaper
from .routes import (
    api_keys,
    capabilities,
    health,
    internal,
    nodes,
    prometheus,
    sandbox_metrics,
    sandboxes,
    secrets,
    snapshots,
    teams,
    template_builds,
    templates,
    volume_content,
    volumes,
)
from .services import quotas
from .services.cluster import ClusterBuilder, ClusterNodes, LostNodeWatch
from .services.copies import SandboxCopier
from .services.locks import SandboxLocks
from .services.metrics import MetricsService
from .services.routes import SandboxRoutes
from .services.sandboxes import SandboxService
from .services.secrets import SecretService
from .services.server_keys import ServerKeys
from .services.shared_uploads import CatalogUploads
from .services.snapshots import SnapshotService
from .services.template_builds import TemplateBuildService
from .services.volumes import VolumeHome, VolumeService

log = logging.getLogger(__name__)
# How long the API keeps an idle connection: longer than the SDK's 300 s pool idle timeout, so that the
# client closes an idle connection first and never sends a request on one the server is closing.
KEEP_ALIVE_S = 620


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None,
    catalog: Catalog | None = None,
    routes: SandboxRoutes | None = None,
) -> FastAPI:
    """The REST API of spec §1 over ``runtime``, which its services reach as a :class:`LocalNode`; the
    template builder uses ``runtime`` itself. Without ``runtime`` it serves a cluster (``hutch api``): the
    nodes registered in the catalog, reached with the cluster secret; no template builds.

    ``routes`` is told when sandboxes start and stop running (the TLS edge's, which routes them itself).

    The app owns ``runtime``: its lifespan starts it, and closes it at shutdown. Without ``catalog`` it opens
    (and at shutdown closes) the one at ``settings.catalog_url``; a catalog passed in stays the caller's.
    At startup it reconciles the catalog with the node (after a crash), then starts the timeout reaper.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            database = catalog
            if database is None:
                database = await Catalog.open(settings.catalog_url)
                stack.push_async_callback(database.close)
            database.session_info[quotas.DEFAULTS] = settings.quotas.model_dump()
            operator_key(
                settings.data_dir, settings.api.operator_key_file
            )  # made now, for ``hutch team`` to read
            node: Nodes
            home: VolumeHome
            cluster_key: str | None = None
            uploads = UploadStore(settings.data_dir, max_bytes=settings.templates.max_upload_mb << 20)
            builder: Builder | ClusterBuilder | None
            if runtime is not None:
                node = local = LocalNode(runtime)
                builder = _builder(settings, runtime, uploads)

                async def home(size_mb: int) -> tuple[str, NodeClient]:
                    return settings.runtime.node_id, local

            else:
                c = settings.cluster
                cluster_key = c.key()
                node = cluster = ClusterNodes(
                    database,
                    key=c.key(),
                    lost_after_s=c.lost_after_s,
                    sample=c.placement_sample,
                    cpu_overcommit=c.cpu_overcommit,
                )
                home = cluster.volume_home
                builder = ClusterBuilder(cluster, build_sandboxes(settings))
                uploads = CatalogUploads(
                    database, settings.data_dir, max_bytes=uploads.max_bytes, cluster_key=c.key()
                )
                watch = LostNodeWatch(database, cluster, interval_s=min(1.0, c.heartbeat_s))
                watch.start()
                stack.push_async_callback(watch.stop)
            await node.start()
            stack.push_async_callback(node.close)
            keys = ServerKeys.load(
                data_dir=settings.data_dir, file=settings.api.server_key_file, cluster_key=cluster_key
            )
            locks = SandboxLocks(database)
            copier = SandboxCopier(
                nodes=node, locks=locks, cache_dir=settings.templates.cache_dir, data_dir=settings.data_dir
            )
            service = SandboxService(
                catalog=database,
                nodes=node,
                locks=locks,
                copier=copier,
                node_id=settings.runtime.node_id,
                default_timeout_s=settings.api.default_timeout_s,
                max_timeout_s=settings.api.max_timeout_s,
                paused_retention_s=settings.api.paused_retention_s,
                keys=keys,
                create_limiter=RateLimiter(settings.api.creates_per_s, settings.api.creates_burst, "creates"),
                routes=routes,
            )
            lost, orphans = await service.reconcile()
            if lost:
                log.info("forgot %d sandboxes the runtime no longer runs: %s", len(lost), ", ".join(lost))
            if orphans:
                log.info("killed %d sandboxes unknown to the catalog: %s", len(orphans), ", ".join(orphans))
            builds = TemplateBuildService(catalog=database, builder=builder, uploads=uploads)
            interrupted = await builds.recover()
            if interrupted:
                log.info("marked %d builds interrupted by the restart as failed", len(interrupted))
            stack.push_async_callback(builds.close)
            reaper = Reaper(service, database, interval_s=settings.api.reaper_interval_s)
            reaper.start()
            stack.push_async_callback(reaper.stop)
            app.state.settings = settings
            app.state.server_keys = keys
            app.state.catalog = database
            app.state.runtime = runtime
            app.state.sandboxes = service
            request_limiter = RateLimiter(
                settings.api.requests_per_s, settings.api.requests_burst, "requests"
            )
            app.state.volumes = VolumeService(
                catalog=database, keys=keys, home=home, holding=node.holding, limiter=request_limiter
            )
            app.state.secrets = SecretService(catalog=database, keys=keys, holding=node.holding)
            app.state.metrics = MetricsService(catalog=database, nodes=node)
            app.state.template_builds = builds
            app.state.snapshots = SnapshotService(
                catalog=database,
                copier=copier,
                cache_dir=settings.templates.cache_dir,
                min_free_disk_mb=settings.api.min_free_disk_mb,
            )
            app.state.request_limiter = request_limiter
            app.state.reaper = reaper
            yield

    app = FastAPI(title="Hutch API", summary="E2B-compatible control plane", lifespan=lifespan)
    errors.install(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.api.max_body_kb << 10,
        # A volume's file streams into its node, which holds it to the volume's size.
        caps={
            template_builds.upload: settings.templates.max_upload_mb << 20,
            volume_content.write_file: 1 << 50,
        },
    )
    openapi.install(app)
    app.include_router(health.router)
    app.include_router(prometheus.router)
    # Before ``sandboxes``: its ``/sandboxes/{sandboxID}`` would match ``/sandboxes/metrics``.
    app.include_router(sandbox_metrics.router, responses=errors.ERROR_RESPONSES)
    app.include_router(sandboxes.router, responses=errors.ERROR_RESPONSES)
    app.include_router(snapshots.router, responses=errors.ERROR_RESPONSES)
    app.include_router(api_keys.router, responses=errors.ERROR_RESPONSES)
    app.include_router(teams.router, responses=errors.ERROR_RESPONSES)
    app.include_router(capabilities.router, responses=errors.ERROR_RESPONSES)
    app.include_router(volumes.router, responses=errors.ERROR_RESPONSES)
    app.include_router(volume_content.router, responses=errors.ERROR_RESPONSES)
    app.include_router(secrets.router, responses=errors.ERROR_RESPONSES)
    # Before ``templates``: its ``/templates/{templateID}`` would match ``/templates/tags``.
    app.include_router(template_builds.router, responses=errors.ERROR_RESPONSES)
    app.include_router(template_builds.uploads, responses=errors.ERROR_RESPONSES)
    app.include_router(templates.router, responses=errors.ERROR_RESPONSES)
    app.include_router(nodes.router, responses=errors.ERROR_RESPONSES)
    app.include_router(internal.router)
    dashboard.install(app)
    return app


def _builder(settings: Settings, runtime: Runtime, uploads: UploadStore) -> Builder | None:
    """The node's template builder, when its runtime can keep a sandbox's layer."""
    if not isinstance(runtime, SupportsCommit):
        return None
    return configured_builder(settings, runtime, uploads)
