"""The proxy's own answers: the JSON errors of spec §2.3, which the SDK matches by substring.

``"was not found"`` becomes ``SandboxNotRunningException`` (and ``is_running()`` returns False);
``"port is not open"`` becomes ``SandboxUnreachableException``.
"""

from __future__ import annotations

import json
from typing import Any

from .asgi import Send

SANDBOX_NOT_FOUND = "The sandbox was not found"
PORT_NOT_OPEN = "The sandbox is running but port is not open"

Answer = tuple[int, dict[str, Any]]
"""A status and a JSON body."""


class Refusal(Exception):
    """The proxy answers the request itself, with :attr:`answer`."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer[1]["message"])
        self.answer = answer


def sandbox_error(sandbox_id: str, message: str, status: int = 502) -> Answer:
    """A 502 (by default) naming the sandbox, as upstream's proxy writes it."""
    return status, {"sandboxId": sandbox_id, "message": message, "code": status}


def bad_request(message: str) -> Answer:
    return 400, {"code": 400, "message": message}


async def send_json(send: Send, answer: Answer, *, prefix: str = "http") -> None:
    """Send ``answer`` as a complete JSON response. ``prefix="websocket.http"`` sends it as the denial
    of a WebSocket handshake (the ASGI ``websocket.http.response`` extension)."""
    status, payload = answer
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": f"{prefix}.response.start", "status": status, "headers": headers})
    await send({"type": f"{prefix}.response.body", "body": body, "more_body": False})
