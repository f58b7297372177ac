"""Strategies for batch/v1 Jobs and CronJobs: wiring of :mod:`svcnet.api.batch` into the
generic registry.

Both kinds have a generation bumped by spec changes and a ``/status`` subresource written by
their controllers (:mod:`svcnet.controllers.job`, :mod:`svcnet.controllers.cronjob`). A Job's
generated selector needs its uid, which the registry assigns before ``prepare_for_create``.

Deleting a batch/v1 Job without a propagation policy orphans its pods, as upstream's
``jobStrategy.DefaultGarbageCollectionPolicy`` does for batch/v1 "for backwards
compatibility" (``kubectl delete`` always sends ``Background``, so its pods go); a CronJob's
Jobs are deleted in the background by default.
"""

from __future__ import annotations

from typing import Any, ClassVar

from svcnet.api import batch
from svcnet.api.errors import FieldError
from svcnet.registry.generic import BaseStrategy

Obj = dict[str, Any]

__all__ = ["CronJobStrategy", "JobStrategy"]


class JobStrategy(BaseStrategy):
    kind: ClassVar[str] = "Job"
    resource: ClassVar[str] = "jobs"
    group: ClassVar[str] = "batch"
    api_version: ClassVar[str] = "batch/v1"
    has_generation: ClassVar[bool] = True
    default_propagation: ClassVar[str] = "Orphan"

    def default(self, obj: Obj) -> Obj:
        return batch.set_defaults_job(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return batch.prepare_job_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return batch.prepare_job_for_update(new, old)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return batch.spec_changed(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return batch.validate_job(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return batch.validate_job_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return batch.prepare_job_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return batch.validate_job_status_update(new, old)


class CronJobStrategy(BaseStrategy):
    kind: ClassVar[str] = "CronJob"
    resource: ClassVar[str] = "cronjobs"
    group: ClassVar[str] = "batch"
    api_version: ClassVar[str] = "batch/v1"
    has_generation: ClassVar[bool] = True

    def default(self, obj: Obj) -> Obj:
        return batch.set_defaults_cronjob(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return batch.prepare_cronjob_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return batch.prepare_cronjob_for_update(new, old)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return batch.spec_changed(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return batch.validate_cronjob(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return batch.validate_cronjob_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return batch.prepare_cronjob_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return batch.validate_cronjob_status_update(new, old)
