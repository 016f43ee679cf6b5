"""Hutch: self-hosted sandboxes for AI agents, wire-compatible with E2B."""
