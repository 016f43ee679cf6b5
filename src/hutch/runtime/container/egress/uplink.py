"""The node's uplink: the host interface sandboxes reach the outside through (``runtime.egress_interface``).

``auto`` (the default) takes the interface of the host's IPv4 default route when the node starts; ``off``,
an empty value or None (as older configurations say) gives no sandbox a route out; any other value names
the interface, used as given. Sandboxes have IPv4 only, so an IPv6 default route alone is no uplink. The
interface is chosen once, at start (a default route that moves later takes a restart); its addresses are
followed live by the firewall, whichever way it was chosen.
"""

from __future__ import annotations

import json
import logging
import subprocess

log = logging.getLogger("hutch.runtime")
AUTO, OFF = "auto", "off"


def default_route_interface() -> str | None:
    """The interface of the host's IPv4 default route (of the lowest metric, if there are several), or
    None without one. A default route with no single interface (a multipath, a blackhole) is none."""
    done = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "default"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        log.warning("cannot read the host's default route: %s", done.stderr.strip())
        return None
    routes = [route for route in json.loads(done.stdout or "[]") if route.get("dev")]
    if not routes:
        return None
    return min(routes, key=lambda route: route.get("metric", 0))["dev"]


def find_uplink(setting: str | None) -> str | None:
    """The uplink ``setting`` (``runtime.egress_interface``) means on this host, or None for no egress."""
    if setting is None or setting.strip() in ("", OFF):
        return None
    if setting != AUTO:
        return setting
    found = default_route_interface()
    if found is None:
        log.warning(
            "runtime.egress_interface is %r but the host has no IPv4 default route: sandboxes have no "
            "route out (name an interface, or set it to %r to silence this)",
            AUTO,
            OFF,
        )
    else:
        log.info("sandboxes reach the outside through %s, the default route's (%r turns it off)", found, OFF)
    return found
