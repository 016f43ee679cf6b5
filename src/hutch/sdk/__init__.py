"""The Hutch SDK: the official E2B sandbox classes, configured from Hutch's settings and ``.env.local``.

``Sandbox`` and ``AsyncSandbox`` are subclasses of ``e2b.Sandbox`` and ``e2b.AsyncSandbox``: everything the
official SDK does works unchanged, plus the seed's legacy ``sandbox.process`` and ``sandbox.filesystem``.
Importing it also makes the interpreter's exit wait for the SDK's HTTP threads (``_exit.py``).
"""

from . import _exit
from ._sandbox import AsyncSandbox, Sandbox

_exit.settle_at_exit()

__all__ = ["AsyncSandbox", "Sandbox"]
