"""ClusterIP allocation records as networking.k8s.io/v1 IPAddress objects.

Theory of operation
-------------------
Upstream's IP allocator (pkg/registry/core/service/ipallocator/ipallocator.go) takes an
address by creating the IPAddress object named after it, and frees it by deleting that object:
the object is the allocation. :class:`IPAddressRecords` makes :class:`~svcnet.allocators.
allocator.StoreAllocator` do the same: its records are stored where the IPAddress registry
keeps its objects (``/registry/networking.k8s.io/ipaddresses/<ip>``), in the registry's own
encoding, so that the single store create that takes an address is also the object clients
list and watch, and nothing can be half written. Whatever makes an IPAddress (the allocator or
a user through the API) takes the address: the store lets one create of a key succeed.

What the allocator needs beyond upstream's object travels in annotations: the Service's uid
(a release only frees the address of the Service that holds it) and which API server made the
record (repair frees a dead process's leaks at once, see allocator.py). ``allocatedAt`` is the
object's creationTimestamp. A record without the ``ipallocator.k8s.io`` managed-by label was
made by someone else: it holds its address, but is not ``managed``.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Final

from svcnet.allocators.allocator import Allocation, Holder, Owner
from svcnet.api.names import ip_family_of
from svcnet.api.servicecidrs import GROUP, IPALLOCATOR_MANAGER, LABEL_MANAGED_BY, ip_address_object
from svcnet.util.clock import rfc3339

IPADDRESSES_PREFIX: Final = f"/registry/{GROUP}/ipaddresses/"
#: The uid of the Service an allocator-made IPAddress belongs to.
ANNOTATION_SERVICE_UID: Final = "svcnet.io/service-uid"
#: ``<server>/<instance>`` of the API server process that made the IPAddress.
ANNOTATION_ALLOCATED_BY: Final = "svcnet.io/allocated-by"


class IPAddressRecords:
    """A :class:`~svcnet.allocators.allocator.RecordCodec` writing IPAddress objects."""

    def prefix(self, kind: str) -> str:
        return IPADDRESSES_PREFIX

    def encode(self, item: str, owner: Owner, holder: Holder | None, now: datetime) -> bytes:
        annotations = {}
        if owner.uid:
            annotations[ANNOTATION_SERVICE_UID] = owner.uid
        if holder is not None:
            annotations[ANNOTATION_ALLOCATED_BY] = f"{holder.server}/{holder.instance}"
        obj = ip_address_object(item, owner.namespace, owner.name,
                                family=ip_family_of(item) or "IPv4", annotations=annotations)
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(now)
        # The registry's encoding (registry/generic.py): compact, metadata after kind.
        return json.dumps(obj, separators=(",", ":")).encode()

    def decode(self, item: str, value: bytes, revision: int) -> Allocation:
        try:
            obj: Any = json.loads(value)
            meta = obj.get("metadata") or {}
            ref = (obj.get("spec") or {}).get("parentRef") or {}
            annotations = meta.get("annotations") or {}
            labels = meta.get("labels") or {}
        except (ValueError, AttributeError):
            return Allocation(item, Owner("", ""), "", revision, managed=False)
        owner = Owner("", "")
        if isinstance(ref, dict) and ref.get("resource") == "services" and not ref.get("group"):
            owner = Owner(str(ref.get("namespace") or ""), str(ref.get("name") or ""),
                          str(annotations.get(ANNOTATION_SERVICE_UID) or ""))
        holder = None
        server, sep, instance = str(annotations.get(ANNOTATION_ALLOCATED_BY) or "").partition("/")
        if sep:
            holder = Holder(server, instance)
        return Allocation(item, owner, str(meta.get("creationTimestamp") or ""), revision,
                          holder, managed=labels.get(LABEL_MANAGED_BY) == IPALLOCATOR_MANAGER)
