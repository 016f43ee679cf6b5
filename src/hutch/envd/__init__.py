"""envd: the daemon inside every sandbox (processes, PTY, files, watch) on port 49983.

Standard library plus a few bundled pure-Python packages (h11, python-multipart, inotify_simple), so that
it runs under any template's CPython >= 3.9. Run it with ``python3 -m hutch.envd --port PORT`` or, packed,
``python3 envd.pyz --port PORT``.
"""

# Set (to the number of its control socket) in the environment of envd started as a node's fork server.
FORK_SERVER_ENV = "HUTCH_ENVD_FORK_SERVER"
