"""Subresources with REST storage of their own, one module each, as Kubernetes' per-resource
REST types (``pkg/registry/<group>/<resource>/storage``): ``scale`` (ScaleREST), ``binding``
(BindingREST), ``log`` (LogREST). ``status`` is the main resource's update with the status
strategy (:meth:`svcnet.registry.generic.Registry.update` with ``status_only``), served by the
ordinary update and patch handlers."""
