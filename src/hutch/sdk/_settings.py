"""The connection settings of ``hutch.Sandbox``: where they come from and how the seed's are translated.

Precedence, per setting: an argument of the call (or of an ``e2b.E2B`` client), then a non-empty variable of
the process environment, then the nearest ``.env.local`` in the current directory or one of its parents.
The file never overrides the environment. The settings read are ``E2B_API_KEY``, ``E2B_API_URL``,
``E2B_SANDBOX_URL``, ``E2B_DOMAIN`` and ``E2B_DEBUG``.

The seed's ``.env.local`` (``E2B_DEBUG=true``, ``E2B_API_URL=http://localhost:3000``,
``E2B_DOMAIN=localhost``) puts the official SDK in debug mode: it makes no create or kill calls, and every
sandbox is the one shared ``debug_sandbox_id``. When debug mode comes from the settings (not from an
argument) and an API answers ``GET /health`` at the API URL, the settings are translated into the ones
``hutch up`` writes: debug mode off, and sandboxes reached through the proxy at ``E2B_SANDBOX_URL``
(``http://localhost:49983`` when unset), so every ``create`` makes a sandbox of its own. The probe is a
blocking request (also under ``AsyncSandbox``, whose hook is synchronous), made only in debug mode; on
loopback it takes about a millisecond.

Real sandboxes need an API key; without one, resolving fails with an error that says where to get one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http.client import HTTPConnection, HTTPSConnection
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from e2b import ApiParams, AuthenticationException

from ..dotenv import find_env_file, read_env_file

log = logging.getLogger("hutch.sdk")

DEFAULT_API_URL = "http://localhost:3000"
DEFAULT_SANDBOX_URL = "http://localhost:49983"
PROBE_TIMEOUT_S = 2.0
MISSING_API_KEY = (
    "No API key for Hutch: E2B_API_KEY is not set in the environment or in a .env.local. "
    "Run `hutch up` (or `make up`) and use the .env.local it writes "
    "(E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY), or pass api_key=..."
)

_VARIABLES = {
    "api_key": "E2B_API_KEY",
    "api_url": "E2B_API_URL",
    "sandbox_url": "E2B_SANDBOX_URL",
    "domain": "E2B_DOMAIN",
}


def settings(environ: Mapping[str, str], cwd: Path) -> dict[str, str]:
    """The ``E2B_*`` variables in effect: the environment's non-empty ones over the nearest ``.env.local``."""
    env_file = find_env_file(cwd)
    values = read_env_file(env_file) if env_file else {}
    values.update({key: value for key, value in environ.items() if key.startswith("E2B_") and value})
    return values


def api_answers(api_url: str) -> bool:
    """Whether an API answers ``GET /health`` at ``api_url`` with a success status."""
    url = urlsplit(api_url)
    connection_class = HTTPSConnection if url.scheme == "https" else HTTPConnection
    connection = connection_class(url.hostname or "localhost", url.port, timeout=PROBE_TIMEOUT_S)
    try:
        connection.request("GET", f"{url.path.rstrip('/')}/health")
        return connection.getresponse().status < 300
    except OSError:
        return False
    finally:
        connection.close()


def resolve(opts: ApiParams, *, environ: Mapping[str, str], cwd: Path) -> ApiParams:
    """The connection parameters for one call of the official SDK, given the call's own ``opts``."""
    values = settings(environ, cwd)
    params: dict[str, object] = {key: value for key, value in opts.items() if value is not None}
    for name, variable in _VARIABLES.items():
        if name not in params and values.get(variable):
            params[name] = values[variable]
    if "debug" not in params:
        params["debug"] = values.get("E2B_DEBUG", "false").lower() == "true"
        if params["debug"]:
            _translate_debug(params)
    if not params["debug"] and not params.get("api_key"):
        raise AuthenticationException(MISSING_API_KEY)
    return cast(ApiParams, params)


def _translate_debug(params: dict[str, object]) -> None:
    api_url = str(params.get("api_url") or DEFAULT_API_URL)
    if not api_answers(api_url):
        log.warning(
            "E2B_DEBUG is set and no API answers at %s: every sandbox is the shared debug sandbox", api_url
        )
        return
    params["debug"] = False
    params["api_url"] = api_url
    params.setdefault("sandbox_url", DEFAULT_SANDBOX_URL)
    log.debug("E2B_DEBUG translated: API %s, sandboxes through %s", api_url, params["sandbox_url"])
