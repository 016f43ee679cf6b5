"""Sandbox logs (spec §1.5): v1 ``SandboxLogs`` and v2 ``SandboxLogsV2Response``."""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import Field

from ...runtime.node_client import LogLine
from ..services.logs import LogLevel
from .common import WireModel


class SandboxLog(WireModel):
    """A v1 log line: as E2B's envd writes them, a JSON object (``level``, ``logger``, ``message``), which
    E2B's CLI parses."""

    timestamp: datetime
    line: str

    @classmethod
    def of(cls, line: LogLine) -> SandboxLog:
        fields = {"level": line.level, "logger": "envd", "message": line.message}
        return cls(timestamp=line.timestamp, line=json.dumps(fields))


class SandboxLogEntry(WireModel):
    timestamp: datetime
    message: str
    level: LogLevel
    fields: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, line: LogLine) -> SandboxLogEntry:
        return cls(timestamp=line.timestamp, message=line.message, level=line.level)  # type: ignore[arg-type]


class SandboxLogs(WireModel):
    logs: list[SandboxLog]
    log_entries: list[SandboxLogEntry] = Field(alias="logEntries")

    @classmethod
    def of(cls, lines: list[LogLine]) -> SandboxLogs:
        return cls(
            logs=[SandboxLog.of(line) for line in lines],
            log_entries=[SandboxLogEntry.of(line) for line in lines],
        )


class SandboxLogsV2(WireModel):
    logs: list[SandboxLogEntry]
