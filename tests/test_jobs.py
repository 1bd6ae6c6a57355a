"""Score jobs: chunked fan-out, progress, failures, stale runs, commit order,
and the same results from a real RQ worker process as inline."""

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from health import jobs, services
from health.models import (
    Customer,
    JobRun,
    Metric,
    MetricReading,
    Opportunity,
    ScoreSnapshot,
)
from health.signals import band_changed
from tests.factories import customer_with_inputs

AS_OF = date(2026, 3, 31)
PROJECT = Path(__file__).resolve().parent.parent


def test_score_all_scores_every_customer_in_chunks(db, settings):
    settings.SCORE_CHUNK_SIZE = 3
    for n in range(10):
        customer_with_inputs(n, AS_OF, variant=n)
    reported = []

    run = jobs.start_score_all(
        as_of=AS_OF, progress=lambda done, total: reported.append((done, total))
    )

    assert run.status == JobRun.Status.SUCCEEDED
    assert (run.done, run.total) == (10, 10)
    # Four chunks of at most three customers, each reporting progress.
    assert reported == [(3, 10), (6, 10), (9, 10), (10, 10)]
    assert ScoreSnapshot.objects.filter(as_of=AS_OF).count() == 10


def test_score_all_with_no_customers_succeeds_at_once(db):
    run = jobs.start_score_all(as_of=AS_OF)

    assert run.status == JobRun.Status.SUCCEEDED
    assert (run.done, run.total) == (0, 0)


def test_backfill_scores_each_date_and_announces_only_the_newest(
    db, django_capture_on_commit_callbacks
):
    # No inputs before the last days: unscored at the first two dates (the
    # first snapshot ever is a change from nothing, but not the newest date).
    # At AS_OF: adoption 100 (active users 0.8) with weight 40, purchasing
    # (one product 40 x 30 + no renewal 50 x 30) / 60 = 45 with weight 25:
    # (40 x 100 + 25 x 45) / 65 = 78.85 -> 78.8, healthy.
    customer = Customer.objects.create(name="Late", external_id="L-1")
    MetricReading.objects.create(
        customer=customer,
        metric=Metric.objects.get(key="active_user_ratio"),
        value=0.8,
        observed_on=AS_OF - timedelta(days=2),
    )
    Opportunity.objects.create(
        customer=customer,
        external_id="O-L-1",
        product="Core",
        kind="new",
        stage="won",
        created_on=AS_OF - timedelta(days=1),
        closed_on=AS_OF - timedelta(days=1),
    )
    announced = []

    def receiver(sender, **kwargs):
        announced.append((kwargs["as_of"], kwargs["old_band"], kwargs["new_band"]))

    band_changed.connect(receiver)
    try:
        dates = [AS_OF - timedelta(days=14), AS_OF - timedelta(days=7), AS_OF]
        with django_capture_on_commit_callbacks(execute=True):
            run = jobs.start_backfill(dates=dates)
    finally:
        band_changed.disconnect(receiver)

    assert run.status == JobRun.Status.SUCCEEDED
    assert (run.done, run.total) == (3, 3)
    assert list(
        customer.snapshots.order_by("as_of").values_list("as_of", "score", "band")
    ) == [
        (dates[0], None, "unscored"),
        (dates[1], None, "unscored"),
        (AS_OF, 78.8, "healthy"),
    ]
    assert announced == [(AS_OF, "unscored", "healthy")]


def test_failing_chunk_marks_the_run_failed(db, monkeypatch):
    customer_with_inputs(1, AS_OF)

    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "score_customers", broken)

    with pytest.raises(RuntimeError):
        jobs.start_score_all(as_of=AS_OF)

    run = JobRun.objects.get()
    assert run.status == JobRun.Status.FAILED
    assert "disk full" in run.error
    assert run.finished_at is not None


def test_a_run_without_progress_becomes_stale(db):
    long_ago = timezone.now() - timedelta(hours=2)
    lost = JobRun.objects.create(
        kind=JobRun.Kind.SCORE_ALL, status=JobRun.Status.RUNNING, total=5
    )
    JobRun.objects.filter(pk=lost.pk).update(heartbeat_at=long_ago)
    busy = JobRun.objects.create(
        kind=JobRun.Kind.SCORE_ALL,
        status=JobRun.Status.RUNNING,
        total=5,
        heartbeat_at=timezone.now(),
    )

    assert services.mark_stale_job_runs() == 1

    lost.refresh_from_db()
    busy.refresh_from_db()
    assert lost.status == JobRun.Status.STALE
    assert lost.finished_at is not None
    assert busy.status == JobRun.Status.RUNNING


def _jobs_sent(callbacks) -> int:
    """On-commit callbacks that send a job (others announce band changes)."""
    return sum(1 for cb in callbacks if cb.__qualname__.startswith("enqueue."))


def test_rescore_waits_for_the_transaction_to_commit(
    db, django_capture_on_commit_callbacks
):
    customer = customer_with_inputs(1, AS_OF, variant=5)

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        transaction.atomic(),
    ):
        jobs.request_rescore([customer.pk], as_of=AS_OF)
        assert not ScoreSnapshot.objects.exists()

    assert _jobs_sent(callbacks) == 1
    assert ScoreSnapshot.objects.get().as_of == AS_OF


def test_rescore_of_many_customers_is_one_job(db, django_capture_on_commit_callbacks):
    ids = [customer_with_inputs(n, AS_OF).pk for n in range(4)]

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        jobs.request_rescore(ids + ids, as_of=AS_OF)

    assert _jobs_sent(callbacks) == 1
    assert ScoreSnapshot.objects.count() == 4


def test_next_nightly_run_is_the_coming_scheduled_hour(settings):
    settings.NIGHTLY_SCORE_HOUR_UTC = 2
    evening = timezone.datetime(2026, 5, 1, 21, 30, tzinfo=timezone.UTC)
    night = timezone.datetime(2026, 5, 2, 1, 0, tzinfo=timezone.UTC)

    assert jobs.next_nightly_at(evening) == timezone.datetime(
        2026, 5, 2, 2, 0, tzinfo=timezone.UTC
    )
    assert jobs.next_nightly_at(night) == timezone.datetime(
        2026, 5, 2, 2, 0, tzinfo=timezone.UTC
    )


# --- A real RQ worker ---------------------------------------------------------


def _needs_worker_database():
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set: no Redis to run a real RQ worker on")
    if connection.vendor != "postgresql":
        pytest.skip("a worker process can share only a PostgreSQL test database")


def _run_worker() -> subprocess.CompletedProcess:
    """Run ``rqworker --burst`` as its own process on the test database."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        ),
    }
    return subprocess.run(
        [sys.executable, "manage.py", "rqworker", "--burst", settings.RQ_QUEUE_NAME],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _clear(queue) -> None:
    queue.empty()
    for registry in (queue.failed_job_registry, queue.scheduled_job_registry):
        for job_id in registry.get_job_ids():
            registry.remove(job_id, delete_job=True)


@pytest.fixture
def empty_queue():
    """The test queue with nothing waiting, scheduled or failed in it."""
    import django_rq

    queue = django_rq.get_queue(settings.RQ_QUEUE_NAME)
    _clear(queue)
    yield queue
    _clear(queue)


@pytest.mark.rq
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_rq_worker_scores_like_the_inline_run(settings, empty_queue):
    _needs_worker_database()
    for n in range(240):
        customer_with_inputs(n, AS_OF, variant=n)

    settings.JOBS_INLINE = True
    jobs.start_score_all(as_of=AS_OF)
    inline = {
        s.customer_id: (s.score, s.band, s.coverage, s.breakdown)
        for s in ScoreSnapshot.objects.all()
    }
    ScoreSnapshot.objects.all().delete()

    settings.JOBS_INLINE = False
    settings.SCORE_CHUNK_SIZE = 50
    run = jobs.start_score_all(as_of=AS_OF)
    assert len(empty_queue) == 5  # 240 customers in chunks of 50
    assert not ScoreSnapshot.objects.exists()

    worker = _run_worker()

    assert worker.returncode == 0, worker.stderr[-2000:]
    run.refresh_from_db()
    assert run.status == JobRun.Status.SUCCEEDED
    assert (run.done, run.total) == (240, 240)
    by_worker = {
        s.customer_id: (s.score, s.band, s.coverage, s.breakdown)
        for s in ScoreSnapshot.objects.all()
    }
    assert by_worker == inline
    assert len({band for _, band, _, _ in inline.values()}) >= 3


@pytest.mark.rq
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_failed_job_does_not_poison_the_next(settings, empty_queue):
    _needs_worker_database()
    customer = customer_with_inputs(1, AS_OF, variant=3)
    settings.JOBS_INLINE = False

    # The first job kills its own database connection and fails; the next
    # job on the same worker must still score.
    empty_queue.enqueue("tests.rq_jobs.drop_own_connection")
    jobs.enqueue(jobs.score_one, customer_id=customer.pk, as_of=AS_OF.isoformat())

    worker = _run_worker()

    assert worker.returncode == 0, worker.stderr[-2000:]
    assert empty_queue.failed_job_registry.count == 1
    assert ScoreSnapshot.objects.filter(customer=customer, as_of=AS_OF).exists()
    assert Customer.objects.count() == 1


@pytest.mark.rq
def test_schedule_nightly_books_one_job_per_night(settings, empty_queue):
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set: no Redis to book the nightly run on")
    settings.JOBS_INLINE = False
    settings.NIGHTLY_SCORE_HOUR_UTC = 2
    now = timezone.datetime(2026, 5, 1, 21, 30, tzinfo=timezone.UTC)
    registry = empty_queue.scheduled_job_registry

    first = jobs.schedule_nightly(now)
    second = jobs.schedule_nightly(now)

    assert first == second == timezone.datetime(2026, 5, 2, 2, 0, tzinfo=timezone.UTC)
    assert registry.get_job_ids() == ["health-nightly-score-20260502"]
    job = empty_queue.fetch_job("health-nightly-score-20260502")
    assert job.func_name == "health.jobs.nightly_score"
