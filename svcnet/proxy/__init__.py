"""The service proxy: Services and EndpointSlices → one nftables table, kept in step.

Data flow (each step a module)::

    Service / EndpointSlice / Node dicts ──model──► ServicePortInfo, EndpointInfo, NodeInfo
        ──topology──► cluster / local endpoints per service port
        ──ruleset──► Ruleset (pure, deterministic, golden-tested)
        ──nft.transaction.plan_sync──► Transaction (full, or only what changed)
        ──nft.nft.NftRunner──► the kernel (``nft -f``, atomic) — or nft.fake.FakeNft in tests

:class:`svcnet.proxy.proxier.Proxier` ties the steps together and remembers what it applied.
The table layout and the Kubernetes semantics it implements are described in
:mod:`svcnet.proxy.ruleset`.
"""
