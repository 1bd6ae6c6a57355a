"""Every write of the ``health`` app: scores, job runs, CSM activity.

Views, admin actions, commands and jobs call these functions and hold no
business logic of their own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import orjson
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils import timezone

from health.inputs import (
    active_models,
    customer_in,
    gather_activity,
    gather_readings,
    load_model_spec,
    scorable_customers,
)
from health.models import (
    BandTally,
    Customer,
    Interaction,
    JobRun,
    Override,
    Pulse,
    ScoreModel,
    ScoreSnapshot,
)
from health.queue import request_rescore
from health.scoring import ModelSpec, derive_metrics, score_customer, tenure_on
from health.selectors import (
    BASELINE_SLACK_DAYS,
    CURRENT_DELTA_DAYS,
    baseline_snapshots,
    overrides_in_effect,
)
from health.signals import band_changed, bands_changed, scores_written

logger = logging.getLogger(__name__)


# --- Scoring ------------------------------------------------------------------


def model_for_segment(models: dict[str, ScoreModel], segment: str) -> ScoreModel:
    model = models.get(segment) or models.get("")
    if model is None:
        raise ScoreModel.DoesNotExist("no active default score model")
    return model


def score_customers(
    *,
    customer_ids: Sequence[int],
    as_of: date,
    announce: bool = True,
    model: ScoreModel | None = None,
) -> int:
    """Score the given customers as of ``as_of`` and upsert their snapshots in
    one transaction; return how many were scored.

    Customers who were not customers on that date are skipped and lose any
    snapshot of that date. Each customer is scored by the active model of its
    segment, else the default one, unless ``model`` names one. Costs a fixed
    number of queries (about twelve) whatever the number of customers, so it
    is safe to run again: a rerun replaces the day's snapshots.

    With ``announce``, the signals of ``health.signals`` go out after commit:
    ``band_changed`` (and ``bands_changed`` once) for the customers whose band
    at their newest date changed, then ``scores_written``.
    """
    ids = list(customer_ids)
    if not ids:
        return 0

    models = {"": model} if model else active_models()
    specs: dict[int, ModelSpec] = {m.pk: load_model_spec(m) for m in models.values()}

    # The band to compare with is the newest one on or before the date: a
    # rerun of the same day that lands in the same band announces nothing.
    earlier = ScoreSnapshot.objects.filter(
        customer=OuterRef("pk"), as_of__lte=as_of
    ).order_by("-as_of", "-computed_at")
    later = ScoreSnapshot.objects.filter(customer=OuterRef("pk"), as_of__gt=as_of)
    # Where the new snapshot is the customer's newest, it becomes the
    # current score, whose change starts from this one.
    then = baseline_snapshots(OuterRef("pk"), as_of, CURRENT_DELTA_DAYS)
    customers = list(
        scorable_customers(as_of)
        .filter(customer_in(Customer, ids, "id"))
        .annotate(
            previous_band=Subquery(earlier.values("band")[:1]),
            has_later=Exists(later),
            score_then=Subquery(then.values("score")[:1]),
        )
        .values_list(
            "pk",
            "segment",
            "customer_since",
            "previous_band",
            "has_later",
            "score_then",
        )
    )

    imported: dict[str, int] = {}
    derived: set[str] = set()
    for spec in specs.values():
        for key, days in spec.imported_metrics.items():
            imported[key] = max(imported.get(key, 0), days)
        derived |= spec.derived_metrics
    scored_ids = [row[0] for row in customers]
    readings = gather_readings(scored_ids, as_of, imported)
    activity = gather_activity(scored_ids, as_of, derived)

    snapshots, previous, baselines = [], {}, {}
    for customer_id, segment, since, previous_band, has_later, then in customers:
        score_model = model or model_for_segment(models, segment)
        spec = specs[score_model.pk]
        values = derive_metrics(as_of, activity[customer_id], spec.derived_metrics)
        result = score_customer(
            spec,
            as_of,
            readings[customer_id],
            values,
            tenure_days=tenure_on(since, as_of),
        )
        snapshots.append(
            NewSnapshot(
                customer_id=customer_id,
                model_id=score_model.pk,
                as_of=as_of,
                score=result.score,
                band=result.band,
                coverage=result.coverage,
                breakdown=result.breakdown(),
            )
        )
        if not has_later:
            previous[customer_id] = previous_band
            baselines[customer_id] = then

    with transaction.atomic():
        # A score-all chunk holds only scorable customers: nothing to delete,
        # and no query to find that out.
        if len(scored_ids) < len(set(ids)):
            drop_snapshots_of_non_customers(as_of=as_of, customer_ids=ids)
        upsert_snapshots(snapshots)
        stamp_overrides(customer_ids=scored_ids, as_of=as_of)
        # A draft's snapshots are not anyone's score: they change neither
        # the current scores nor the band tallies.
        if model is None or model.is_frozen:
            newest = [s for s in snapshots if s.customer_id in baselines]
            set_current_scores(newest, baselines)
            # An older day may be the start of a newer score's change.
            others = set(scored_ids) - {s.customer_id for s in newest}
            refresh_current_scores(customer_ids=sorted(others), removed=False)
            forget_band_tallies(days=[as_of])
        if announce:
            changes = [
                (s, previous[s.customer_id])
                for s in snapshots
                if s.customer_id in previous and previous[s.customer_id] != s.band
            ]
            newest = sorted(previous)
            if changes or newest:
                transaction.on_commit(lambda: _announce(changes, newest, as_of))

    return len(snapshots)


_SNAPSHOT_UPSERT = """
    WITH incoming AS (DELETE FROM health_snapshot_upsert RETURNING *)
    INSERT INTO health_scoresnapshot (customer_id, model_id, as_of, score, band,
        coverage, breakdown, computed_at, overridden_band)
    SELECT customer_id, model_id, as_of, score, band, coverage, breakdown, %s, ''
    FROM incoming
    ON CONFLICT (customer_id, model_id, as_of) DO UPDATE SET
        score = EXCLUDED.score, band = EXCLUDED.band,
        coverage = EXCLUDED.coverage, breakdown = EXCLUDED.breakdown,
        computed_at = EXCLUDED.computed_at
    RETURNING id, customer_id, model_id
"""


@dataclass(slots=True)
class NewSnapshot:
    """A snapshot on its way to the table: a model instance per customer
    cost a score-all of 100,000 customers a few seconds."""

    customer_id: int
    model_id: int
    as_of: date
    score: float | None
    band: str
    coverage: float
    breakdown: dict
    pk: int | None = None
    computed_at: datetime | None = None


def upsert_snapshots(snapshots: list[NewSnapshot]) -> None:
    """Insert the snapshots, or replace the score fields of the ones stored
    for the same customer, model and day, and set their pks. Leaves the
    override fields alone (``stamp_overrides`` owns them).

    One statement elsewhere. On PostgreSQL three: COPY into a temporary
    table, then one INSERT ... SELECT that empties it. About four times
    faster than the multi-row INSERT of a thousand JSON breakdowns, which
    has to be built, quoted and parsed as one long statement.
    """
    if not snapshots:
        return
    if connection.vendor != "postgresql":
        stored = ScoreSnapshot.objects.bulk_create(
            [
                ScoreSnapshot(
                    customer_id=s.customer_id,
                    model_id=s.model_id,
                    as_of=s.as_of,
                    score=s.score,
                    band=s.band,
                    coverage=s.coverage,
                    breakdown=s.breakdown,
                )
                for s in snapshots
            ],
            update_conflicts=True,
            unique_fields=["customer", "model", "as_of"],
            update_fields=["score", "band", "coverage", "breakdown", "computed_at"],
        )
        for s, row in zip(snapshots, stored, strict=True):
            s.pk, s.computed_at = row.pk, row.computed_at
        return

    now = timezone.now()
    # The temporary table lives as long as the database session and is
    # emptied by the statement that reads it; it needs a transaction, or
    # its rows would go at the end of the COPY.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS health_snapshot_upsert ("
            "customer_id bigint, model_id bigint, as_of date, "
            "score double precision, band varchar(16), "
            "coverage double precision, breakdown jsonb) ON COMMIT DELETE ROWS"
        )
        with cursor.copy("COPY health_snapshot_upsert FROM STDIN") as copy:
            for s in snapshots:
                copy.write_row(
                    (
                        s.customer_id,
                        s.model_id,
                        s.as_of,
                        s.score,
                        s.band,
                        s.coverage,
                        # Ten times as fast as json.dumps, which took a
                        # tenth of a score-all of 100,000 customers.
                        orjson.dumps(s.breakdown).decode(),
                    )
                )
        cursor.execute(_SNAPSHOT_UPSERT, [now])
        pks = {(c, m): pk for pk, c, m in cursor.fetchall()}
    for s in snapshots:
        s.pk = pks[(s.customer_id, s.model_id)]
        s.computed_at = now


# Writes the current score of each row of {rows}: (id, as_of, score, band,
# coverage, score_then), score_then being the score the change over 30 days
# starts from (DESIGN.md rule 9).
_CURRENT_SET = """
    UPDATE health_customer AS c SET
        current_score = n.score, current_band = n.band,
        current_coverage = n.coverage, scored_on = n.as_of,
        score_30d_ago = n.score_then, delta_30d = n.score - n.score_then
    FROM {rows} WHERE c.id = n.id
"""
# Those rows for the customers whose ids are in {ids}, from each one's newest
# official snapshot. The scalar subqueries are index probes on (customer,
# as_of).
_NEWEST_ROWS = """
    (SELECT s.customer_id AS id, s.as_of, s.score, s.band, s.coverage, (
        SELECT t.score FROM health_scoresnapshot t
        JOIN health_scoremodel tm ON tm.id = t.model_id
        WHERE t.customer_id = s.customer_id AND tm.status <> 'draft'
            AND t.as_of <= {then} AND t.as_of >= {earliest}
        ORDER BY t.as_of DESC, t.computed_at DESC, t.id DESC LIMIT 1
    ) AS score_then
    FROM health_scoresnapshot s
    WHERE s.id IN (
        SELECT (
            SELECT n.id FROM health_scoresnapshot n
            JOIN health_scoremodel nm ON nm.id = n.model_id
            WHERE n.customer_id = k.id AND nm.status <> 'draft'
            ORDER BY n.as_of DESC, n.computed_at DESC, n.id DESC LIMIT 1)
        FROM health_customer k WHERE {ids})) AS n
"""

_CURRENT_CLEAR = """
    UPDATE health_customer AS k SET
        current_score = NULL, current_band = NULL, current_coverage = NULL,
        scored_on = NULL, score_30d_ago = NULL, delta_30d = NULL
    WHERE {ids} AND scored_on IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM health_scoresnapshot n
        JOIN health_scoremodel nm ON nm.id = n.model_id
        WHERE n.customer_id = k.id AND nm.status <> 'draft')
"""

_ROWS_POSTGRESQL = """
    jsonb_to_recordset(%s::jsonb) AS n(id bigint, as_of date,
        score double precision, band text, coverage double precision,
        score_then double precision)
"""
_ROWS_SQLITE = """
    (SELECT json_extract(value, '$.id') AS id,
        json_extract(value, '$.as_of') AS as_of,
        json_extract(value, '$.score') AS score,
        json_extract(value, '$.band') AS band,
        json_extract(value, '$.coverage') AS coverage,
        json_extract(value, '$.score_then') AS score_then
     FROM json_each(%s)) AS n
"""


def set_current_scores(
    snapshots: Sequence[NewSnapshot], baselines: dict[int, float | None]
) -> None:
    """Make each snapshot, known to be its customer's newest official one,
    the customer's current score; ``baselines`` holds the score its change
    over 30 days starts from (None: no change). One statement."""
    if not snapshots:
        return
    rows = json.dumps(
        [
            {
                "id": s.customer_id,
                "as_of": s.as_of.isoformat(),
                "score": s.score,
                "band": s.band,
                "coverage": s.coverage,
                "score_then": baselines[s.customer_id],
            }
            for s in snapshots
        ]
    )
    source = _ROWS_POSTGRESQL if connection.vendor == "postgresql" else _ROWS_SQLITE
    with connection.cursor() as cursor:
        cursor.execute(_CURRENT_SET.format(rows=source), [rows])


def refresh_current_scores(
    *, customer_ids: Sequence[int] | None = None, removed: bool = True
) -> None:
    """Copy each customer's newest official snapshot onto the customer
    (every customer when ``customer_ids`` is None) and, unless the caller
    says no snapshot was ``removed``, clear the score of a customer left
    without one. Two statements; each customer costs a few index probes.

    Whoever writes or deletes snapshots calls this for their customers:
    scoring does, saving a snapshot through the ORM does (a receiver), and
    publishing a model does for everyone.
    """
    days = CURRENT_DELTA_DAYS
    slack = days + BASELINE_SLACK_DAYS
    if connection.vendor == "postgresql":
        then, earliest = f"s.as_of - {days}", f"s.as_of - {slack}"
        ids_sql, params = "k.id = ANY(%s)", [list(customer_ids or [])]
    else:
        # SQLite keeps dates as ISO text, which date() shifts.
        then = f"date(s.as_of, '-{days} days')"
        earliest = f"date(s.as_of, '-{slack} days')"
        ids_sql = "k.id IN (SELECT value FROM json_each(%s))"
        params = [json.dumps(list(customer_ids or []))]
    if customer_ids is None:
        ids_sql, params = "1 = 1", []
    elif not customer_ids:
        return

    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        rows = _NEWEST_ROWS.format(then=then, earliest=earliest, ids=ids_sql)
        cursor.execute(_CURRENT_SET.format(rows=rows), params)
        if removed:
            cursor.execute(_CURRENT_CLEAR.format(ids=ids_sql), params)


def forget_band_tallies(*, days: Sequence[date] | None = None) -> None:
    """Drop the band tallies of the days (all when None): their snapshots
    changed, and the next read counts them again. One query."""
    tallies = BandTally.objects.all()
    if days is not None:
        tallies = tallies.filter(as_of__in=list(days))
    tallies.delete()


def _announce(
    changes: list[tuple[NewSnapshot, str | None]],
    newest: list[int],
    as_of: date,
) -> None:
    for snapshot, old_band in changes:
        band_changed.send(
            sender=ScoreSnapshot,
            customer_id=snapshot.customer_id,
            snapshot_id=snapshot.pk,
            as_of=as_of,
            old_band=old_band,
            new_band=snapshot.band,
        )
    if changes:
        bands_changed.send(
            sender=ScoreSnapshot,
            changes=[
                (s.customer_id, s.pk, old_band, s.band) for s, old_band in changes
            ],
            as_of=as_of,
        )
    if newest:
        scores_written.send(sender=ScoreSnapshot, customer_ids=newest, as_of=as_of)


def stamp_overrides(*, customer_ids: Sequence[int], as_of: date) -> int:
    """Write the override in effect on ``as_of`` onto each customer's
    snapshots of that date, and clear it where none is; returns how many
    snapshots carry one. Call it after scoring: the scoring job upserts the
    computed band and leaves these fields alone. One query when none of the
    customers has an override; else three plus one update per overridden
    customer."""
    ids = list(customer_ids)
    # Overrides are rare: where none of these customers ever had one, no
    # snapshot can carry a stamp, and the clearing update below (which may
    # scan the whole day on a large book) is skipped.
    if not Override.objects.filter(customer_id__in=ids).exists():
        return 0
    in_effect: dict[int, Override] = {}
    for override in overrides_in_effect(as_of, ids):
        in_effect.setdefault(override.customer_id, override)

    snapshots = ScoreSnapshot.objects.filter(customer_id__in=ids, as_of=as_of)
    snapshots.exclude(customer_id__in=list(in_effect)).exclude(
        overridden_band=""
    ).update(overridden_band="", override=None)
    stamped = 0
    for customer_id, override in in_effect.items():
        stamped += snapshots.filter(customer_id=customer_id).update(
            overridden_band=override.band, override=override
        )
    return stamped


def drop_snapshots_of_non_customers(
    *, as_of: date, customer_ids: Sequence[int] | None = None
) -> int:
    """Delete the snapshots dated ``as_of`` of customers who were not
    customers that day (churned since, or starting later), among
    ``customer_ids`` or all, so that scoring the day again leaves none of
    them behind; refresh their current scores. Returns how many went. Two
    queries when none did."""
    with transaction.atomic():
        gone = ScoreSnapshot.objects.filter(as_of=as_of).exclude(
            customer__in=scorable_customers(as_of)
        )
        if customer_ids is not None:
            gone = gone.filter(customer_id__in=list(customer_ids))
        customer_ids = sorted(set(gone.values_list("customer_id", flat=True)))
        if not customer_ids:
            return 0
        count, _ = gone.delete()
        refresh_current_scores(customer_ids=customer_ids)
        forget_band_tallies(days=[as_of])
    logger.info(
        "Removed %d snapshots of %s of %d former or future customers",
        count,
        as_of,
        len(customer_ids),
    )
    return count


def scorable_ids(as_of: date) -> list[int]:
    return list(scorable_customers(as_of).order_by("pk").values_list("pk", flat=True))


def chunked(ids: Sequence[int], size: int) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


# --- Job runs -------------------------------------------------------------------


def create_job_run(*, kind: str, total: int, params: dict) -> JobRun:
    now = timezone.now()
    return JobRun.objects.create(
        kind=kind,
        total=total,
        params=params,
        status=JobRun.Status.RUNNING if total else JobRun.Status.SUCCEEDED,
        started_at=now,
        heartbeat_at=now,
        finished_at=None if total else now,
    )


def record_progress(*, run_id: int, done: int) -> None:
    """Add ``done`` to a run's progress; the step that completes it marks it
    succeeded. Two queries, safe when chunks finish at the same moment."""
    now = timezone.now()
    JobRun.objects.filter(pk=run_id).update(done=F("done") + done, heartbeat_at=now)
    JobRun.objects.filter(
        pk=run_id, status=JobRun.Status.RUNNING, done__gte=F("total")
    ).update(status=JobRun.Status.SUCCEEDED, finished_at=now)


def fail_job_run(*, run_id: int, error: str) -> None:
    JobRun.objects.filter(
        pk=run_id, status__in=[JobRun.Status.QUEUED, JobRun.Status.RUNNING]
    ).update(
        status=JobRun.Status.FAILED, error=error[:4000], finished_at=timezone.now()
    )


def mark_stale_job_runs(*, now: datetime | None = None) -> int:
    """Runs that have reported nothing for longer than the stale limit end as
    stale: their worker most likely died. Returns how many."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    stale = JobRun.objects.filter(
        Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True, created_at__lt=limit),
        status__in=[JobRun.Status.QUEUED, JobRun.Status.RUNNING],
    )
    count = stale.update(
        status=JobRun.Status.STALE,
        finished_at=now,
        error="No progress reported in time; the worker was probably lost.",
    )
    if count:
        logger.warning("Marked %d job runs stale", count)
    return count


def last_successful_run(kind: str) -> JobRun | None:
    return (
        JobRun.objects.filter(kind=kind, status=JobRun.Status.SUCCEEDED)
        .order_by("-finished_at")
        .first()
    )


# --- CSM activity -------------------------------------------------------------
#
# A CSM's own work on an account. Each write re-scores the customer once the
# transaction commits: inline at once, or on an RQ worker.


def log_interaction(
    *,
    customer: Customer,
    csm: AbstractBaseUser | None,
    kind: str,
    occurred_at: datetime,
    sentiment: int = 0,
    summary: str = "",
) -> Interaction:
    """Record an interaction with the customer and re-score it."""
    with transaction.atomic():
        interaction = Interaction.objects.create(
            customer=customer,
            csm=csm,
            kind=kind,
            occurred_at=occurred_at,
            sentiment=sentiment,
            summary=summary,
        )
        request_rescore([customer.pk])
    logger.info("Interaction %s logged for customer %s", interaction.pk, customer.pk)
    return interaction


def log_pulse(
    *,
    customer: Customer,
    csm: AbstractBaseUser | None,
    rating: int,
    note: str = "",
    entered_at: datetime | None = None,
) -> Pulse:
    """Record a CSM's 1-5 read of the account and re-score the customer."""
    with transaction.atomic():
        pulse = Pulse.objects.create(
            customer=customer,
            csm=csm,
            rating=rating,
            note=note,
            entered_at=entered_at or timezone.now(),
        )
        request_rescore([customer.pk])
    logger.info("Pulse %s logged for customer %s", pulse.pk, customer.pk)
    return pulse


def reassign_owner(*, customer: Customer, owner: AbstractBaseUser | None) -> Customer:
    """Give the customer to another CSM (None: no owner). The score does not
    depend on the owner, so nothing is re-scored."""
    with transaction.atomic():
        previous = customer.owner_id
        customer.owner = owner
        customer.save(update_fields=["owner", "updated_at"])
    logger.info(
        "Customer %s reassigned from user %s to user %s",
        customer.pk,
        previous,
        customer.owner_id,
    )
    return customer
