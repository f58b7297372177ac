"""Integration tests share the e2e API-server fixture (a real `svcnet server` process)."""

from tests.e2e.conftest import cluster

__all__ = ["cluster"]
