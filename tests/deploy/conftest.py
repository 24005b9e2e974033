"""The ops fixtures (the three services on one Redis) serve the deploy tests too."""

from tests.ops.conftest import clock, suite

__all__ = ["clock", "suite"]
