"""svcnet's CNI plugin (type ``svcnet-cni``, plus ``loopback``): pod networking for containerd's
CRI and the process runtime alike. See docs/CNI.md.

Modules: :mod:`.spec` (the CNI protocol: environment, versions, errors, results),
:mod:`.config` (the network configuration and the conflist the agent writes), :mod:`.alias`
(the pod netns's contract name in ``/run/netns``), :mod:`.plugin` (ADD/DEL/CHECK/GC, the
library API) and :mod:`.main` (the ``svcnet-cni`` executable). This file imports nothing: the
executable's start-up time is on every pod's start path.
"""
