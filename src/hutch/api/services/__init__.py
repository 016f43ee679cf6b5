"""The control plane's logic, free of HTTP: async, keyword-only, returning catalog rows or frozen
dataclasses and raising ``hutch.errors``."""
