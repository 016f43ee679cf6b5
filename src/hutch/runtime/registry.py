"""Backends by name, imported only when chosen: ``container`` (crun) and ``fake`` (host processes)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ..errors import NotSupported
from .base import Runtime

BACKENDS = {
    "container": "hutch.runtime.container:ContainerRuntime",
    "fake": "hutch.runtime.fake:FakeRuntime",
}


def load(name: str, **options: Any) -> Runtime:
    """Build the backend called ``name``; an unknown name is an error listing the known ones."""
    target = BACKENDS.get(name)
    if target is None:
        raise NotSupported(f"unknown runtime backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    module_name, _, class_name = target.partition(":")
    module = import_module(module_name)
    return getattr(module, class_name)(**options)
