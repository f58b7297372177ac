"""The labels a svcnet node agent puts on its Node: the cluster and the node's index, from
which ``svcnet exec`` and ``svcnet explain`` find the node's and its pods' network
namespaces. (Container logs are served by the node agent itself: svcnet/node/server.py.)
"""

from __future__ import annotations

from typing import Final

LABEL_CLUSTER: Final = "svcnet.io/cluster"
LABEL_NODE_INDEX: Final = "svcnet.io/node-index"
