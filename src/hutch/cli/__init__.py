"""The ``hutch`` command (typer + rich)."""
