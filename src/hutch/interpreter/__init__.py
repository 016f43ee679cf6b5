"""The code-interpreter server that runs inside a sandbox on port 49999 (E2B's ``/execute`` protocol).

Each context is a Jupyter kernel (ipykernel for Python, bash_kernel for bash, Deno for JavaScript and
TypeScript) driven through ``jupyter_client``. The package imports nothing else from ``hutch``: templates
ship it on its own and run ``python3 -m hutch.interpreter --port 49999``.
"""
