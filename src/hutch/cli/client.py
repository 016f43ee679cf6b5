"""Where the API is and how to call it: the connection settings, and a small HTTP client whose errors
end the command with the API's message on one red line.

Each setting comes from (highest first) its command-line option, the environment (``E2B_API_URL``,
``E2B_API_KEY``, ``E2B_SANDBOX_URL``, ``E2B_DOMAIN``), then ``.env.local`` in the working directory as
``hutch up`` writes it; the API URL falls back to ``https://api.<E2B_DOMAIN>``, then to
``http://localhost:3000``. TLS is verified against the system's trust store (where ``hutch up`` puts its
local authority) or ``SSL_CERT_FILE``. The operator's commands send the operator
key, which ``hutch up`` keeps in its data directory, instead of an API key.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.text import Text

from ..config import Settings
from ..dotenv import read_env_file
from ..secret_files import OPERATOR_KEY_HEADER, operator_key_path

DEFAULT_API_URL = "http://localhost:3000"
ENV_FILE = Path(".env.local")
_TIMEOUT_S = 60.0
_PAGE_SIZE = 100

errors = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """End the command: ``message`` as one red line on stderr, exit code 1."""
    errors.print(Text(message, style="red"), soft_wrap=True)
    raise typer.Exit(1)


def segment(value: str) -> str:
    """``value`` as one path segment (E2B percent-encodes ids and names)."""
    return quote(value, safe="")


@dataclass(frozen=True)
class Connection:
    """Where the control plane and the data plane are, and the key to use."""

    api_url: str
    api_key: str | None
    sandbox_url: str | None
    # The E2B domain when the API URL comes from it (``https://api.<domain>``), else None.
    domain: str | None = None

    @classmethod
    def resolve(cls, api_url: str | None, api_key: str | None) -> Connection:
        saved = read_env_file(ENV_FILE)

        def pick(option: str | None, name: str) -> str | None:
            return option or os.environ.get(name) or saved.get(name) or None

        explicit, domain = pick(api_url, "E2B_API_URL"), pick(None, "E2B_DOMAIN")
        if explicit is None and domain is not None:
            return cls(f"https://api.{domain}", pick(api_key, "E2B_API_KEY"), None, domain)
        return cls(
            api_url=(explicit or DEFAULT_API_URL).rstrip("/"),
            api_key=pick(api_key, "E2B_API_KEY"),
            sandbox_url=pick(None, "E2B_SANDBOX_URL"),
        )

    def require_key(self) -> str:
        if not self.api_key:
            fail("no API key: pass --api-key, set E2B_API_KEY, or run where hutch up wrote .env.local")
        return self.api_key

    def sdk_options(self) -> dict[str, Any]:
        """Keyword arguments that point the official ``e2b`` SDK at this API."""
        if self.domain is not None:
            return {"api_key": self.require_key(), "domain": self.domain}
        options: dict[str, Any] = {"api_key": self.require_key(), "api_url": self.api_url}
        if self.sandbox_url:
            options["sandbox_url"] = self.sandbox_url
        return options


class Api:
    """The control plane over HTTP. A failed call ends the command (:func:`fail`)."""

    def __init__(
        self, connection: Connection, *, authenticated: bool = True, headers: dict[str, str] | None = None
    ) -> None:
        if headers is None:
            headers = {"X-API-Key": connection.require_key()} if authenticated else {}
        self.url = connection.api_url
        self._http = httpx.Client(
            base_url=connection.api_url,
            headers=headers,
            timeout=_TIMEOUT_S,
            verify=ssl.create_default_context(),
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            fail(f"cannot reach the API at {self.url}: {error or type(error).__name__}")
        if response.status_code >= 400:
            fail(_error_line(response))
        return response

    @classmethod
    def as_operator(cls, connection: Connection, data_dir: Path | None) -> Api:
        """The API with the operator key of the stack whose data directory is ``data_dir`` (by default
        the configured one, ``HUTCH_DATA_DIR``)."""
        settings = Settings()
        path = operator_key_path(data_dir or settings.data_dir, settings.api.operator_key_file)
        try:
            key = path.read_bytes().hex()
        except FileNotFoundError:
            fail(f"no operator key at {path}: start the stack (hutch up), or pass its --data-dir")
        except PermissionError:
            fail(f"cannot read the operator key at {path}: run as root")
        return cls(connection, headers={OPERATOR_KEY_HEADER: key})

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(method, path, **kwargs).json()

    def pages(self, path: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a listing that pages with ``X-Next-Token``."""
        query = {**(params or {}), "limit": str(_PAGE_SIZE)}
        while True:
            response = self.call("GET", path, params=query)
            yield from response.json()
            token = response.headers.get("X-Next-Token")
            if not token:
                return
            query["nextToken"] = token


def _error_line(response: httpx.Response) -> str:
    """``404: sandbox … not found`` from E2B's ``{"code", "message"}`` body, or the raw status."""
    try:
        body = response.json()
        return f"{body['code']}: {body['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text.strip() or response.reason_phrase}"
