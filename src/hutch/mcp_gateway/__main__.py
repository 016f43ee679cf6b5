"""``python -m hutch.mcp_gateway`` (``/usr/local/bin/mcp-gateway`` in the template)."""

from __future__ import annotations

import sys

from .launcher import launch
from .options import parser


def main() -> int:
    options = parser().parse_args()
    if options.command == "serve":
        from .serve import main as serve  # the mcp library and the HTTP server: the launcher needs neither

        return serve(options)
    return launch(options)


if __name__ == "__main__":
    sys.exit(main())
