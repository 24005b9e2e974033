"""Fixtures of the deploy tests: a container's environment (tests/deploy/launch.py), and the ops fixtures (the
three services on one Redis)."""

from tests.deploy.launch import databases, production_env
from tests.ops.conftest import clock, suite

__all__ = ["clock", "databases", "production_env", "suite"]
