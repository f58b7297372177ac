"""The Kubernetes-compatible HTTPS API server."""
