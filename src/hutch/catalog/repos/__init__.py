"""Queries, one module per table. Functions take the caller's session and never commit."""
