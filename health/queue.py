"""Sending jobs: to RQ workers when Redis is configured, else inline; always
once the current transaction commits, so a job never sees uncommitted rows.

Jobs are named by dotted path, as RQ stores them, so that services low in the
house can ask for work without importing the jobs module that calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

# A chunk of about a thousand customers takes seconds; ten minutes means
# something is wrong, and the chunk is retried once from scratch (it is
# idempotent).
JOB_TIMEOUT = 600
# Results are kept a day for the django-rq dashboard; failures a week, long
# enough to be looked at after a weekend.
RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600
ON_FAILURE = "health.jobs.on_job_failure"


def get_queue():
    import django_rq

    return django_rq.get_queue(settings.RQ_QUEUE_NAME)


def enqueue(func: str | Callable, *, job_id: str | None = None, **kwargs) -> None:
    """Run ``func(**kwargs)`` once the current transaction commits: on an RQ
    worker when Redis is configured, else inline."""

    def send() -> None:
        if settings.JOBS_INLINE:
            target = import_string(func) if isinstance(func, str) else func
            target(**kwargs)
            return
        from rq import Callback, Retry

        get_queue().enqueue(
            func,
            kwargs=kwargs,
            job_id=job_id,
            job_timeout=JOB_TIMEOUT,
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            retry=Retry(max=1, interval=30),
            on_failure=Callback(ON_FAILURE),
        )

    transaction.on_commit(send)


def today() -> date:
    return timezone.now().astimezone(UTC).date()


def request_rescore(customer_ids: list[int], as_of: date | None = None) -> None:
    """Re-score customers as of today once the current transaction commits:
    one job, whatever the number of customers."""
    ids = sorted(set(customer_ids))
    if not ids:
        return
    as_of_iso = (as_of or today()).isoformat()
    if len(ids) == 1:
        enqueue("health.jobs.score_one", customer_id=ids[0], as_of=as_of_iso)
    else:
        enqueue("health.jobs.score_many", customer_ids=ids, as_of=as_of_iso)
