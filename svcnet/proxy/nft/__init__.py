"""A small, typed nftables toolkit: objects, transactions, the `nft` runner and a fake.

Modelled on knftables (the library kube-proxy uses), reduced to what the service proxy needs:

* :mod:`.objects` — :class:`Table`, :class:`Chain`, :class:`Rule`, :class:`Set`, :class:`Map`,
  :class:`Element` and :class:`Ruleset`: frozen data that validates itself (names, element
  keys against the set's type, IPv4 literals) so that nothing malformed reaches ``nft``, and
  renders to ``nft`` syntax deterministically.
* :mod:`.transaction` — an ordered list of commands with a sticky first error, rendered to one
  ``nft -f`` script (atomic in the kernel), and :func:`plan_sync`, the diff between the ruleset
  last applied and the one wanted.
* :mod:`.nft` — the :class:`NftRunner` protocol and :class:`SubprocessNft` (``nft -f -``,
  optionally inside a network namespace).
* :mod:`.fake` — :class:`FakeNft`, an in-memory kernel for the subset of commands we emit, with
  the kernel's semantics (atomic transactions, existence and reference checks).
"""
