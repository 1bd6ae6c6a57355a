"""Background jobs and the functions that start them.

A job takes ids and ISO dates, never model instances, loads what it needs and
calls a service. Jobs are sent only after the transaction that asked for them
commits. With ``REDIS_URL`` set they go to RQ workers; without it the same
functions run inline, in the process that asked.

Run a worker with the scheduler, so that the nightly run fires::

    python manage.py rqworker --with-scheduler default
    python manage.py schedule_nightly      # once; each run books the next
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from health import services
from health.models import JobRun
from health.queue import (
    FAILURE_TTL,
    JOB_TIMEOUT,
    RESULT_TTL,
    enqueue,
    get_queue,
)

# Callers start work from this module; these two live in health.queue so that
# services can ask for a re-score without importing the jobs.
from health.queue import request_rescore as request_rescore
from health.queue import today as today

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

NIGHTLY_JOB_PREFIX = "health-nightly-score"


def on_job_failure(job, connection, exc_type, exc_value, tb) -> None:
    """RQ calls this when a job fails; a run that loses a chunk for good (no
    retry left) has failed."""
    run_id = job.kwargs.get("run_id")
    if run_id is not None and not job.retries_left:
        close_old_connections()
        services.fail_job_run(run_id=run_id, error=f"{exc_type.__name__}: {exc_value}")


def _fresh_connection(func: Callable) -> Callable:
    """Drop database connections the server closed, before and after a job,
    so one job's dead connection is not the next job's error."""

    def wrapper(**kwargs):
        # Inline, a job may run inside the caller's transaction, whose
        # connection must stay as it is.
        refresh = not any(c.in_atomic_block for c in connections.all())
        if refresh:
            close_old_connections()
        try:
            return func(**kwargs)
        finally:
            if refresh:
                close_old_connections()

    wrapper.__name__ = func.__name__
    wrapper.__qualname__ = func.__qualname__
    wrapper.__module__ = func.__module__
    wrapper.__doc__ = func.__doc__
    return wrapper


# --- Jobs ---------------------------------------------------------------------


@_fresh_connection
def score_chunk(*, run_id: int, customer_ids: list[int], as_of: str, announce=True):
    """Score one chunk of a run and record its progress."""
    started = time.monotonic()
    count = services.score_customers(
        customer_ids=customer_ids,
        as_of=date.fromisoformat(as_of),
        announce=announce,
    )
    services.record_progress(run_id=run_id, done=len(customer_ids))
    logger.info(
        "Scored %d of %d customers as of %s in %.2fs (run %s)",
        count,
        len(customer_ids),
        as_of,
        time.monotonic() - started,
        run_id,
    )
    return count


@_fresh_connection
def score_one(*, customer_id: int, as_of: str):
    """Re-score customers after something touched them."""
    return services.score_customers(
        customer_ids=[customer_id], as_of=date.fromisoformat(as_of)
    )


@_fresh_connection
def score_many(*, customer_ids: list[int], as_of: str):
    """Re-score the customers an import touched, in one job."""
    return services.score_customers(
        customer_ids=customer_ids, as_of=date.fromisoformat(as_of)
    )


@_fresh_connection
def nightly_score():
    """Score everyone as of yesterday, after booking tomorrow's run, so that
    a failure tonight does not end the schedule."""
    schedule_nightly()
    services.mark_stale_job_runs()
    yesterday = today() - timedelta(days=1)
    return start_score_all(as_of=yesterday, kind=JobRun.Kind.NIGHTLY).pk


# --- Starting work -------------------------------------------------------------


def start_score_all(
    *,
    as_of: date,
    kind: str = JobRun.Kind.SCORE_ALL,
    progress: Progress | None = None,
) -> JobRun:
    """Score every customer as of a date, in chunks. Inline, this returns once
    everything is scored; with RQ, once the chunks are queued."""
    return start_backfill(dates=[as_of], kind=kind, progress=progress)


def start_backfill(
    *,
    dates: list[date],
    kind: str = JobRun.Kind.BACKFILL,
    progress: Progress | None = None,
) -> JobRun:
    """Score every customer at each of the dates (oldest first), as one run.

    Only the newest date announces band changes, so a backfill of history
    assigns no work for the past."""
    dates = sorted(set(dates))
    for day in dates:
        services.drop_snapshots_of_non_customers(as_of=day)
    plan = [(day, services.scorable_ids(day)) for day in dates]
    total = sum(len(ids) for _, ids in plan)
    run = services.create_job_run(
        kind=kind,
        total=total,
        params={"dates": [d.isoformat() for d in dates]},
    )
    logger.info("Run %s (%s): %d customer-dates queued", run.pk, kind, total)

    chunks = [
        {
            "run_id": run.pk,
            "customer_ids": chunk,
            "as_of": day.isoformat(),
            "announce": day == dates[-1],
        }
        for day, ids in plan
        for chunk in services.chunked(ids, settings.SCORE_CHUNK_SIZE)
    ]

    if not settings.JOBS_INLINE:
        for chunk in chunks:
            enqueue(score_chunk, **chunk)
        return run

    done = 0
    try:
        for chunk in chunks:
            score_chunk(**chunk)
            done += len(chunk["customer_ids"])
            if progress:
                progress(done, total)
    except Exception as exc:
        services.fail_job_run(run_id=run.pk, error=f"{type(exc).__name__}: {exc}")
        raise
    run.refresh_from_db()
    return run


def wait_for(
    run: JobRun, progress: Progress | None = None, poll: float = 0.5
) -> JobRun:
    """Block until a run ends, reporting progress; for commands and tests."""
    while True:
        run.refresh_from_db()
        if progress:
            progress(run.done, run.total)
        if run.status not in (JobRun.Status.QUEUED, JobRun.Status.RUNNING):
            return run
        services.mark_stale_job_runs()
        time.sleep(poll)


def next_nightly_at(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    at = now.astimezone(UTC).replace(
        hour=settings.NIGHTLY_SCORE_HOUR_UTC, minute=0, second=0, microsecond=0
    )
    return at if at > now else at + timedelta(days=1)


def schedule_nightly(now: datetime | None = None) -> datetime | None:
    """Book the next nightly run on RQ's scheduler. Its job id names the day,
    so booking twice books once. Returns when it will run; None inline."""
    if settings.JOBS_INLINE:
        return None
    at = next_nightly_at(now)
    job_id = f"{NIGHTLY_JOB_PREFIX}-{at:%Y%m%d}"
    queue = get_queue()
    if queue.fetch_job(job_id) is None:
        queue.enqueue_at(
            at,
            nightly_score,
            job_id=job_id,
            job_timeout=JOB_TIMEOUT,
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
        )
        logger.info("Nightly score booked for %s", at.isoformat())
    return at
