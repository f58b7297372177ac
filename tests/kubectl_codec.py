"""The protobuf codec over the installed kubectl's descriptors, for tests and the benchmark.

Without kubectl there is no codec: :func:`require_codec` then skips the test on a laptop and
fails it under ``SVCNET_REQUIRE_ROOT_TESTS=1`` (CI installs kubectl), as
:func:`tests.conftest.require` does for every capability a test needs.
"""

from __future__ import annotations

from functools import cache

from svcnet.api import kubectl_descriptors
from svcnet.api.protobuf import Codec


@cache
def kubectl_codec() -> Codec | None:
    binary = kubectl_descriptors.find_kubectl()
    if binary is None:
        return None
    found = kubectl_descriptors.load(binary, None)
    return Codec(found.files, kubectl_descriptors.shapes(found))


def require_codec() -> Codec:
    from tests.conftest import require

    codec = kubectl_codec()
    require(codec is not None, "kubectl is not installed (its binary holds the descriptors "
                               "of Kubernetes' protobuf messages)")
    assert codec is not None
    return codec
