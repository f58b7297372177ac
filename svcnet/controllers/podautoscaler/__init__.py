"""The horizontal pod autoscaler (``autoscaling/v2`` HorizontalPodAutoscalers).

:mod:`.replicas` works out a metric's count, :mod:`.normalize` stabilizes and limits it, and
:mod:`.horizontal` is the controller that reads the metrics and writes the target's scale.
"""

from svcnet.controllers.podautoscaler.horizontal import HorizontalController

__all__ = ["HorizontalController"]
