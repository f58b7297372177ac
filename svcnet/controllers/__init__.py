"""Controllers: level-triggered reconcilers built on :mod:`svcnet.client` (informers, queues)."""
