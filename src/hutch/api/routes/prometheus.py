"""``GET /metrics``: the node for a Prometheus scraper, in the text format (0.0.4), written here (gauges
only, no client library): each running sandbox's latest sample labelled by ``sandbox_id`` and
``template_id``, how many sandboxes run and are paused, the warm pools, and how long the last sampling pass
took. Only the operator key opens it, as ``Authorization: Bearer <key>`` (what a scrape config's
``authorization`` sends) or in ``X-Hutch-Operator-Key``. Not E2B's API: left out of the API's documentation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Response, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ...runtime.node_client import MetricSample, NodeUsage
from ...secret_files import OPERATOR_KEY_HEADER, operator_key
from ..deps import MetricsServiceDep, SettingsDep
from ..services import auth

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_bearer = HTTPBearer(auto_error=False)
_operator_key = APIKeyHeader(name=OPERATOR_KEY_HEADER, auto_error=False)


async def require_operator(
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_operator_key)],
) -> None:
    """Only the operator key passes, in either header (401 otherwise)."""
    given = bearer.credentials if bearer is not None else header
    auth.check_operator(expected=operator_key(settings.data_dir, settings.api.operator_key_file), given=given)


router = APIRouter(include_in_schema=False, dependencies=[Depends(require_operator)])

Labels = dict[str, str]
# Per running sandbox: a gauge's name, the field of the latest sample it shows, and its help.
SANDBOX_GAUGES = (
    ("hutch_sandbox_cpu_count", "cpu_count", "CPUs the sandbox may use."),
    ("hutch_sandbox_cpu_used_percent", "cpu_used_pct", "Share of its CPUs used since the sample before."),
    ("hutch_sandbox_memory_used_bytes", "mem_used", "Memory used, without inactive file cache."),
    ("hutch_sandbox_memory_total_bytes", "mem_total", "The sandbox's memory limit."),
    ("hutch_sandbox_memory_cache_bytes", "mem_cache", "File cache charged to the sandbox."),
    ("hutch_sandbox_disk_used_bytes", "disk_used", "Used on the sandbox's own disk."),
    ("hutch_sandbox_disk_total_bytes", "disk_total", "Size of the sandbox's own disk."),
)


@router.get("/metrics")
async def metrics(service: MetricsServiceDep) -> Response:
    return Response(render(await service.node_usage()), media_type=CONTENT_TYPE)


def render(usage: NodeUsage) -> str:
    """``usage`` as Prometheus text: a ``# HELP`` and ``# TYPE`` line, then the samples, per gauge."""
    lines: list[str] = []
    paused = sum(sandbox.paused for sandbox in usage.sandboxes)
    states = [({"state": "running"}, len(usage.sandboxes) - paused), ({"state": "paused"}, paused)]
    _gauge(lines, "hutch_sandboxes", "Sandboxes the node holds, by state.", states)
    sampled: list[tuple[Labels, MetricSample]] = [
        ({"sandbox_id": sandbox.sandbox_id, "template_id": sandbox.template_id}, sandbox.latest)
        for sandbox in usage.sandboxes
        if not sandbox.paused and sandbox.latest is not None
    ]
    for name, field, help_text in SANDBOX_GAUGES:
        _gauge(lines, name, help_text, [(labels, getattr(sample, field)) for labels, sample in sampled])
    taken = [(labels, sample.timestamp.timestamp()) for labels, sample in sampled]
    _gauge(lines, "hutch_sandbox_sample_timestamp_seconds", "When the latest sample was taken.", taken)
    pools = [({"template_id": pool.template_id, "engine": pool.engine}, pool) for pool in usage.warm_pools]
    ready = [(labels, pool.ready) for labels, pool in pools]
    _gauge(lines, "hutch_warm_pool_ready", "Started sandboxes waiting in a warm pool.", ready)
    target = [(labels, pool.target) for labels, pool in pools]
    _gauge(lines, "hutch_warm_pool_target", "Sandboxes a warm pool is kept at.", target)
    sampling = [({}, usage.sampling_s)]
    _gauge(lines, "hutch_metrics_sampling_seconds", "How long the node's last sampling pass took.", sampling)
    return "\n".join(lines) + "\n"


def _gauge(lines: list[str], name: str, help_text: str, samples: Iterable[tuple[Labels, float]]) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    lines += [f"{name}{_labels(labels)} {value}" for labels, value in samples]


def _labels(labels: Labels) -> str:
    """``{name="value",…}``, with backslashes, quotes and line feeds in values escaped."""
    if not labels:
        return ""
    pairs = (f'{name}="{_escaped(value)}"' for name, value in labels.items())
    return "{" + ",".join(pairs) + "}"


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
