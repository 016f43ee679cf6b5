"""Shapes shared by every resource: the error body, the base of the wire models, and log levels."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

# The levels of E2B's log entries (builds' and sandboxes'), lowest first.
LogLevel = Literal["debug", "info", "warn", "error"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)


def at_least(level: str) -> tuple[str, ...]:
    """The levels at ``level`` or above."""
    return LOG_LEVELS[LOG_LEVELS.index(level) :]


class WireModel(BaseModel):
    """A JSON body in E2B's names: fields carry their wire name as alias, unknown request keys are ignored."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, extra="ignore")


class ErrorBody(WireModel):
    """E2B's ``Error``: the SDK reads both keys of every documented error response."""

    code: int
    message: str
