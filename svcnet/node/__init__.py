"""The node side of svcnet: pods as processes in their own network namespaces.

Modules, from the bottom up: :mod:`.names` (kernel-safe names), :mod:`.netns` (namespaces,
bridges, veths), :mod:`.ipam` (pod IPs), :mod:`.runtime` (container processes),
:mod:`.probes` (readiness/liveness/startup), :mod:`.pods` (pure pod planning and status) and
:mod:`.runner` (the thin apply layer). Threads that work inside a netns live in
:mod:`svcnet.util.nsthread`, because the service proxy uses them too.
"""
