"""Hutch's error hierarchy. It knows nothing of HTTP: each edge (REST API, proxy, CLI) maps it.

::

    HutchError
     ├── NotFound            a sandbox, template or key that does not exist (for this team)
     ├── Conflict            the resource is in a state that forbids the call
     ├── InvalidRequest      the caller's input is wrong
     ├── Unauthenticated     no or a bad API key
     ├── Forbidden           authenticated, but not allowed
     ├── QuotaExceeded       a limit (sandboxes, rate) is reached
 │    └── OutOfSpace        a volume or disk is full
     ├── NotSupported        the backend or build lacks the feature
     ├── BackendUnavailable  the runtime could not do it (crun failed, no capacity)
     │    ├── NodeFull          a node has no room for the sandbox (another may)
     │    └── NodeUnavailable   the node holding the sandbox is lost or does not answer
     └── DeadlineExceeded    it took too long
"""

from __future__ import annotations


class HutchError(Exception):
    """Base of every error Hutch raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(HutchError):
    """The thing named does not exist, or the caller may not see it."""


class Conflict(HutchError):
    """The resource's state forbids the call."""


class InvalidRequest(HutchError):
    """The caller's input is wrong."""


class Unauthenticated(HutchError):
    """No API key, or one that is not valid."""


class Forbidden(HutchError):
    """The caller is known but not allowed to do this."""


class QuotaExceeded(HutchError):
    """A limit is reached; the call may succeed later (after ``retry_after_s``, when known)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class OutOfSpace(QuotaExceeded):
    """A volume or disk has no room left for what was written."""


class NotSupported(HutchError):
    """This backend or build does not have the feature."""


class BackendUnavailable(HutchError):
    """The runtime failed to carry the call out."""


class NodeFull(BackendUnavailable):
    """A node has no room for the sandbox; another node may have."""


class NodeUnavailable(BackendUnavailable):
    """The node that holds the sandbox is lost or does not answer."""


class DeadlineExceeded(HutchError):
    """The call did not finish in time."""
