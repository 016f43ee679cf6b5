"""envd's errors: Connect RPC codes with their HTTP statuses, and plain HTTP errors."""

from __future__ import annotations

import errno

# Connect code -> HTTP status for unary error responses (Connect protocol spec).
CONNECT_STATUS = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}


class RpcError(Exception):
    """An error a Connect RPC ends with: a Connect code string and a message."""

    def __init__(self, code: str, message: str) -> None:
        if code not in CONNECT_STATUS:
            raise ValueError(f"unknown connect code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message}


class HttpError(Exception):
    """An error a plain HTTP endpoint answers with: ``{"code": <status>, "message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def to_json(self) -> dict:
        return {"code": self.status, "message": self.message}


def invalid_argument(message: str) -> RpcError:
    return RpcError("invalid_argument", message)


def not_found(message: str) -> RpcError:
    return RpcError("not_found", message)


def os_error_to_rpc(err: OSError, path: str) -> RpcError:
    """Map a filesystem ``OSError`` on ``path`` to the Connect code the SDK expects."""
    if err.errno == errno.ENOENT:
        return RpcError("not_found", f"path '{path}' does not exist")
    if err.errno == errno.EEXIST:
        return RpcError("already_exists", f"path '{path}' already exists")
    if err.errno in (errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.ENAMETOOLONG, errno.ELOOP):
        return RpcError("invalid_argument", f"invalid path '{path}': {err.strerror}")
    if err.errno in (errno.EACCES, errno.EPERM):
        return RpcError("permission_denied", f"permission denied for '{path}': {err.strerror}")
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        return RpcError("resource_exhausted", f"not enough disk space for '{path}'")
    return RpcError("internal", f"error on '{path}': {err.strerror}")
