"""Shapes shared by every resource: the error body and the base of the wire models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A JSON body in E2B's names: fields carry their wire name as alias, unknown request keys are ignored."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, extra="ignore")


class ErrorBody(WireModel):
    """E2B's ``Error``: the SDK reads both keys of every documented error response."""

    code: int
    message: str
