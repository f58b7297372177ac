"""The client side of svcnet: how our own components talk to an API server.

Layers, each usable alone:

* :mod:`~svcnet.client.kubeconfig`: kubeconfig file → :class:`KubeConfig` (+ ``ssl.SSLContext``);
* :mod:`~svcnet.client.rest`: :class:`RESTClient`, verbs over one aiohttp session, Status → error;
* :mod:`~svcnet.client.watchstream`: sans-IO framing of a watch stream into events;
* :mod:`~svcnet.client.informer`: list + watch into an indexed cache, with event handlers;
* :mod:`~svcnet.client.workqueue`: client-go's work queue (dedup, delay, rate-limited retry);
* :mod:`~svcnet.client.controller`: workers that drain a queue into an async ``sync(key)``;
* :mod:`~svcnet.client.events`: an Event recorder with client-go's count aggregation.
"""
