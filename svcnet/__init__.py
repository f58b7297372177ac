"""svcnet: Kubernetes Service networking, for real, in Python."""

__version__ = "0.1.0"
