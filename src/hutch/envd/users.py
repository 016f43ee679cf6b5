"""Unix users: who a request acts as (``Authorization: Basic`` / ``username=``), and their ids."""

from __future__ import annotations

import base64
import binascii
import os
import pwd

from .errors import RpcError


class User:
    """A resolved Unix user: name, uid, gid, supplementary groups and home."""

    __slots__ = ("gid", "groups", "home", "name", "uid")

    def __init__(self, entry: pwd.struct_passwd) -> None:
        self.name = entry.pw_name
        self.uid = entry.pw_uid
        self.gid = entry.pw_gid
        self.home = entry.pw_dir or "/"
        self.groups: list[int] | None = None

    def group_ids(self) -> list[int]:
        if self.groups is None:
            try:
                self.groups = os.getgrouplist(self.name, self.gid)
            except OSError:
                self.groups = [self.gid]
        return self.groups

    @property
    def is_current(self) -> bool:
        """True when envd already runs as this user, so no switch is needed (or possible)."""
        return self.uid == os.getuid()


def lookup(name: str) -> User | None:
    try:
        return User(pwd.getpwnam(name))
    except (KeyError, TypeError, ValueError):
        return None


def basic_username(header: str | None) -> str | None:
    """The user name in ``Authorization: Basic base64("<name>:")``; None when the header is absent."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise RpcError("unauthenticated", "invalid authorization header: only Basic is supported")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise RpcError("unauthenticated", "invalid authorization header") from None
    return decoded.partition(":")[0]


def resolve(name: str | None, default: str) -> User:
    """The user a request acts as; an unknown name is ``unauthenticated``."""
    wanted = name or default
    user = lookup(wanted)
    if user is None:
        raise RpcError("unauthenticated", f"invalid username: '{wanted}'")
    return user


def rpc_user(headers: dict, default: str) -> User:
    return resolve(basic_username(headers.get("authorization")), default)
