"""envd's plain HTTP endpoints: the handler table, by method and path."""

from .envs import envs
from .files import download, upload
from .health import health
from .init import init
from .metrics import metrics

ROUTES = {
    ("GET", "/health"): health,
    ("GET", "/envs"): envs,
    ("GET", "/metrics"): metrics,
    ("POST", "/init"): init,
    ("GET", "/files"): download,
    ("POST", "/files"): upload,
}

# Paths reachable without X-Access-Token (/files checks a token or a signature itself, /init its own rule).
PUBLIC = {"/health", "/files", "/init"}
