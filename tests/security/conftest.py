"""The security tests use a real envd (from tests/envd) and the real stack (from tests/stack.py)."""

from tests.envd.conftest import envd, test_user  # noqa: F401 (fixtures)
