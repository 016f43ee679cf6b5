"""The data-plane proxy (spec §2): routes ``{port}-{id}.{domain}`` hosts and ``E2b-Sandbox-Id``/``Port``
headers to sandbox ports, streaming HTTP and bridging WebSockets."""

from .app import ProxyApp, Resolver, create_proxy_app
from .routing import SandboxRoute
from .server import create_server, serve

__all__ = ["ProxyApp", "Resolver", "SandboxRoute", "create_proxy_app", "create_server", "serve"]
