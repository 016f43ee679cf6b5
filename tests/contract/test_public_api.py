"""The SDK's public surface is pinned: adding or removing a public name must change this test."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import e2b

import hutch
import hutch.sdk

PUBLIC = ["AsyncSandbox", "Sandbox"]


def test_sdk_exports_exactly_the_public_names() -> None:
    assert hutch.sdk.__all__ == PUBLIC
    public_members = {name for name in vars(hutch.sdk) if not name.startswith("_")}
    assert public_members == set(PUBLIC)


def test_sdk_modules_are_private() -> None:
    modules = [module.name for module in pkgutil.iter_modules(hutch.sdk.__path__)]
    assert modules
    assert all(name.startswith("_") for name in modules), modules


def test_hutch_reexports_the_sdk_classes() -> None:
    assert hutch.__all__ == PUBLIC
    assert hutch.Sandbox is hutch.sdk.Sandbox
    assert hutch.AsyncSandbox is hutch.sdk.AsyncSandbox


def test_classes_are_the_official_ones_extended() -> None:
    assert issubclass(hutch.Sandbox, e2b.Sandbox)
    assert issubclass(hutch.AsyncSandbox, e2b.AsyncSandbox)
    for cls in (hutch.Sandbox, hutch.AsyncSandbox):
        assert isinstance(vars(cls)["process"], property)
        assert isinstance(vars(cls)["filesystem"], property)


def test_import_hutch_is_light() -> None:
    code = "import sys, hutch; assert 'e2b' not in sys.modules and 'hutch.sdk' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
