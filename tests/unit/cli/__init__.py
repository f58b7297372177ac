"""Unit tests of the kubectl-like client commands (pure helpers only)."""
