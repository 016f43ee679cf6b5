"""Jupyter messages of one execution → the NDJSON lines of ``/execute`` (spec §4), and when it is over."""

from __future__ import annotations

from typing import Any

END_OF_EXECUTION = {"type": "end_of_execution"}
KEEPALIVE = {"type": "keepalive"}

# MIME type → result field, in the order the fields are written; every other MIME type goes to "extra".
_FORMATS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
    "e2b/data": "data",
    "e2b/chart": "chart",
}


def error(name: str, value: str, traceback: str = "") -> dict[str, Any]:
    return {"type": "error", "name": name, "value": value, "traceback": traceback}


def result(data: dict[str, Any], *, is_main_result: bool) -> dict[str, Any]:
    """A ``display_data``/``execute_result`` bundle as a ``result`` line."""
    line: dict[str, Any] = {"type": "result"}
    extra = dict(data)
    for mime, field in _FORMATS.items():
        value = extra.pop(mime, None)
        if value is None:
            continue
        if field == "text" and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]  # the repr of a str result, shown without its quotes
        line[field] = value
    line["extra"] = extra
    line["is_main_result"] = is_main_result
    return line


def _timestamp(msg: dict[str, Any]) -> str:
    date = msg["header"].get("date")
    return date.isoformat() if hasattr(date, "isoformat") else str(date)


class Turn:
    """One ``execute_request`` in flight: turns its iopub messages and shell reply into lines.

    It is over once the kernel went idle for it and replied (the two arrive on different sockets, in either
    order), or when it was ended from outside (a restart, a crash, a closed context).
    """

    def __init__(self) -> None:
        self.started = False
        self.idle = False
        self.replied = False
        self.ended = False
        self.errored = False

    @property
    def done(self) -> bool:
        return self.ended or (self.idle and self.replied)

    @property
    def settled(self) -> bool:
        """The kernel has nothing more to do for it: idle for it, even without a reply, or ended."""
        return self.ended or self.idle

    def feed(self, source: str, msg: dict[str, Any]) -> list[dict[str, Any]]:
        """The lines for a message from ``source``: ``iopub``, ``reply`` (shell), or ``ended`` (then
        ``msg`` is already the line that ``end`` made)."""
        if source == "iopub":
            return self.iopub(msg)
        if source == "reply":
            return self.reply(msg)
        return [msg]

    def iopub(self, msg: dict[str, Any]) -> list[dict[str, Any]]:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            name = "stderr" if content.get("name") == "stderr" else "stdout"
            return [{"type": name, "text": content.get("text", ""), "timestamp": _timestamp(msg)}]
        if kind in ("execute_result", "display_data"):
            return [result(content.get("data", {}), is_main_result=kind == "execute_result")]
        if kind == "execute_input":
            self.started = True
            return [{"type": "number_of_executions", "execution_count": content["execution_count"]}]
        if kind == "error":
            return self._error(content)
        if kind == "status" and content.get("execution_state") == "idle":
            self.idle = True
        return []

    def reply(self, msg: dict[str, Any]) -> list[dict[str, Any]]:
        self.replied = True
        if msg["msg_type"] != "execute_reply":
            return []
        content = msg["content"]
        if content.get("status") == "error":
            return self._error(content)
        if content.get("status") == "aborted":
            self.errored = True
            return [error("ExecutionAborted", "Execution was aborted")]
        return []

    def end(self, name: str, value: str) -> list[dict[str, Any]]:
        """Ends the turn from outside, reporting why."""
        self.ended = True
        return [error(name, value)]

    def _error(self, content: dict[str, Any]) -> list[dict[str, Any]]:
        if self.errored:
            return []
        self.errored = True
        return [
            error(
                content.get("ename", ""), content.get("evalue", ""), "\n".join(content.get("traceback", []))
            )
        ]
