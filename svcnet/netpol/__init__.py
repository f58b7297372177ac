"""NetworkPolicy enforcement on a node: the nftables table (plan.py, pure) and the agent's part
that keeps it in step with the cluster (enforcer.py)."""
