"""The EndpointSlice controller (``discovery.k8s.io/v1`` slices for selector Services).

* :mod:`.reconciler`: the pure planner, :func:`plan_slices` → :class:`SlicePlan`;
* :mod:`.controller`: :class:`EndpointSliceController` (informers → keys → ``sync``);
* :mod:`.tracker`: :class:`EndpointSliceTracker`, the stale-cache guard;
* :mod:`.util`: pod/Service predicates shared with the legacy Endpoints controller.
"""

from svcnet.controllers.endpointslice.controller import EndpointSliceController
from svcnet.controllers.endpointslice.reconciler import (
    CONTROLLER_NAME,
    DEFAULT_MAX_ENDPOINTS_PER_SLICE,
    SlicePlan,
    plan_slices,
)
from svcnet.controllers.endpointslice.tracker import EndpointSliceTracker

__all__ = [
    "CONTROLLER_NAME",
    "DEFAULT_MAX_ENDPOINTS_PER_SLICE",
    "EndpointSliceController",
    "EndpointSliceTracker",
    "SlicePlan",
    "plan_slices",
]
