"""The node API's wire: how the calls of :class:`~.node_client.NodeClient` and their answers travel between
an API replica and ``hutch node`` as JSON, and how a node's errors come back as the same ``HutchError``.

Every request carries the cluster secret in :data:`CLUSTER_KEY_HEADER`; the data types are the runtime's
own dataclasses, converted by pydantic."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import TypeAdapter

from .. import errors
from ..errors import HutchError
from .capabilities import LogLine, MetricSample, NodeUsage, VolumeEntry
from .types import EgressSettings, SandboxHandle, SandboxSpec

CLUSTER_KEY_HEADER = "X-Hutch-Cluster-Key"
PREFIX = "/node/v1"

T = TypeVar("T")

SPEC = TypeAdapter(SandboxSpec)
EGRESS_SETTINGS = TypeAdapter(EgressSettings)
HANDLE = TypeAdapter(SandboxHandle)
HANDLES = TypeAdapter(list[SandboxHandle])
SAMPLES = TypeAdapter(list[MetricSample])
LINES = TypeAdapter(list[LogLine])
USAGE = TypeAdapter(NodeUsage)
VOLUME_ENTRY = TypeAdapter(VolumeEntry)
VOLUME_ENTRIES = TypeAdapter(list[VolumeEntry])

# The errors a node answers with, by name; any other is a BackendUnavailable.
_ERRORS: dict[str, type[HutchError]] = {
    cls.__name__: cls
    for cls in (
        errors.NotFound, errors.Conflict, errors.InvalidRequest, errors.QuotaExceeded, errors.NotSupported,
        errors.BackendUnavailable, errors.NodeFull, errors.DeadlineExceeded, errors.OutOfSpace,
    )
}  # fmt: skip


def dump(adapter: TypeAdapter[T], value: T) -> Any:
    return adapter.dump_python(value, mode="json")


def load(adapter: TypeAdapter[T], value: Any) -> T:
    return adapter.validate_python(value)


def error_body(error: HutchError) -> dict[str, str]:
    """A node's error as JSON (the nearest class the wire knows)."""
    kind = next((c.__name__ for c in type(error).__mro__ if c.__name__ in _ERRORS), "BackendUnavailable")
    return {"error": kind, "message": error.message}


def error_from(body: Any, status: int) -> HutchError:
    """The ``HutchError`` a node's error answer stands for."""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return _ERRORS.get(str(body.get("error")), errors.BackendUnavailable)(body["message"])
    return errors.BackendUnavailable(f"the node answered {status}")


def fork_results(body: Any) -> list[SandboxHandle | HutchError]:
    """A fork's answer: per copy, a handle or an error."""
    return [load(HANDLE, item["sandbox"]) if "sandbox" in item else error_from(item, 500) for item in body]
