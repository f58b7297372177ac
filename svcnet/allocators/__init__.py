"""Allocators: ClusterIPs from service CIDRs, NodePorts, LoadBalancer IPs from pools.

ranges.py (what can be handed out) → bitmap.py (pure choice of the next item) →
allocator.py (the store arbitrates; one key per allocated item) → operation.py (allocate before
the owner's write, release after) → repair.py (reconcile allocations with stored owners).
"""
