"""Reads of scores that pages, exports and the API share.

Snapshots of draft models are left out everywhere here: a draft tried
against history may leave snapshots, but they are not the customer's score.
Each function costs a fixed number of queries whatever the number of
customers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from django.db.models import (
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce

from health.inputs import scorable_customers
from health.models import (
    BandTally,
    Customer,
    Interaction,
    JobRun,
    Opportunity,
    Override,
    ScoreModel,
    ScoreSnapshot,
)
from health.queue import today
from health.scoring import round_half_up

# DESIGN.md rule 9: the earlier snapshot of a change may be this much older
# than the day it stands for, and no more.
BASELINE_SLACK_DAYS = 7
# The change the pages show and sort by, kept on each customer's current
# score (``Customer.delta_30d``).
CURRENT_DELTA_DAYS = 30


def official_snapshots() -> QuerySet[ScoreSnapshot]:
    return ScoreSnapshot.objects.exclude(model__status=ScoreModel.Status.DRAFT)


def overrides_in_effect(as_of: date, customer_ids: Iterable[int] | None = None):
    """Overrides in effect on the date, newest first. One query when
    evaluated."""
    overrides = Override.objects.filter(
        Q(ended_on__isnull=True) | Q(ended_on__gt=as_of),
        starts_on__lte=as_of,
        expires_on__gt=as_of,
    ).order_by("customer_id", "-created_at", "-pk")
    if customer_ids is not None:
        overrides = overrides.filter(customer_id__in=list(customer_ids))
    return overrides


def latest_as_of() -> date | None:
    """The latest date with official snapshots, None before the first
    score. One query, reading the (as_of, band) index backwards until an
    official snapshot (MAX over the join would read them all)."""
    return (
        official_snapshots().order_by("-as_of").values_list("as_of", flat=True).first()
    )


def latest_full_run_as_of() -> date | None:
    """The newest date that a whole-book run (score all, nightly, backfill)
    scored and finished; else the latest date with snapshots. Re-scoring one
    customer today does not move it, so an export of "the latest scores"
    holds every customer. Two queries at most."""
    runs = JobRun.objects.filter(
        status=JobRun.Status.SUCCEEDED,
        kind__in=[JobRun.Kind.SCORE_ALL, JobRun.Kind.NIGHTLY, JobRun.Kind.BACKFILL],
    ).order_by("-finished_at")[:20]
    dates = [
        date.fromisoformat(day) for run in runs for day in run.params.get("dates", [])
    ]
    return max(dates) if dates else latest_as_of()


def latest_snapshots(as_of: date | None = None) -> QuerySet[ScoreSnapshot]:
    """One snapshot per customer dated ``as_of`` (default: the latest date
    with snapshots), with its customer, owner and model joined.

    A customer scored twice that day (its segment, and so its model, changed)
    counts with the snapshot computed last. One query when evaluated, plus
    one to find the date when ``as_of`` is None.
    """
    if as_of is None:
        as_of = latest_as_of()
        if as_of is None:
            return ScoreSnapshot.objects.none()

    newest = (
        official_snapshots()
        .filter(customer=OuterRef("customer"), as_of=as_of)
        .order_by("-computed_at", "-pk")
    )
    return (
        official_snapshots()
        .filter(as_of=as_of, pk=Subquery(newest.values("pk")[:1]))
        .select_related("customer", "customer__owner", "model")
    )


def with_baseline(
    snapshots: QuerySet[ScoreSnapshot], as_of: date, days: int, name: str
) -> QuerySet[ScoreSnapshot]:
    """Annotate ``name`` with the score of the latest snapshot on or before
    ``as_of - days``, when that snapshot is at most seven days older than
    that day; else None. A correlated subquery: no extra query."""
    baseline = baseline_snapshots(OuterRef("customer"), as_of, days)
    return snapshots.annotate(**{name: Subquery(baseline.values("score")[:1])})


def baseline_snapshots(customer, as_of: date, days: int) -> QuerySet[ScoreSnapshot]:
    """The customer's snapshots that may stand for the day ``as_of - days``
    (DESIGN.md rule 9: on or before it, at most seven days older), newest
    first; ``customer`` is an id or an ``OuterRef``."""
    then = as_of - timedelta(days=days)
    return (
        official_snapshots()
        .filter(
            customer=customer,
            as_of__lte=then,
            as_of__gte=then - timedelta(days=BASELINE_SLACK_DAYS),
        )
        .order_by("-as_of", "-computed_at", "-pk")
    )


def score_change(now: float | None, then: float | None) -> float | None:
    """Now minus then, when both are scored; rounded to the stored precision
    so that float noise does not show."""
    if now is None or then is None:
        return None
    return round_half_up(now - then, 1)


def score_deltas(
    customer_ids: Iterable[int], as_of: date, days: int = 30
) -> dict[int, float | None]:
    """The change of each customer's score over ``days`` days up to
    ``as_of`` (DESIGN.md rule 9): None for a customer without a scored
    snapshot on ``as_of`` or a scored baseline. One query."""
    deltas: dict[int, float | None] = dict.fromkeys(customer_ids)
    rows = with_baseline(
        latest_snapshots(as_of).filter(customer_id__in=list(deltas)),
        as_of,
        days,
        "score_then",
    ).values_list("customer_id", "score", "score_then")
    for customer_id, now, then in rows:
        deltas[customer_id] = score_change(now, then)
    return deltas


# --- Workbench pages ---------------------------------------------------------
#
# The pages list customers, not snapshots: a customer with no snapshot yet is
# listed as unscored. Every row reads its newest official snapshot through
# correlated subqueries on the (customer, as_of) index, so a page costs one
# query for its rows and one for its count, whatever its size.

DECLINE_POINTS = 10
# Scores are stored to one decimal; a difference of two of them may land a
# hair beside the decimal it stands for (60.1 - 50.1 != 10.0 in floats).
_FLOAT_SLACK = 1e-6
LOW_BANDS = ("very_unhealthy", "unhealthy")
HIGH_BANDS = ("healthy", "very_healthy")


def customer_scores() -> QuerySet:
    """Current customers (customers as of today: started, not churned),
    with their current score under the names the pages use: ``score``,
    ``band`` (None when never scored), ``coverage``,
    ``scored_on``, the change over 30 days up to that date (``score_then``
    and ``delta``, DESIGN.md rule 9) and ``last_interaction_at``.

    The scores are columns of the customer (``refresh_current_scores``
    keeps them), so a whole book filters and sorts without reading a
    snapshot. Lazy: filter, order and slice it; each evaluation is one
    query.
    """
    return (
        scorable_customers(today())
        .select_related("owner")
        .annotate(
            score=F("current_score"),
            band=F("current_band"),
            coverage=F("current_coverage"),
            score_then=F("score_30d_ago"),
            delta=F("delta_30d"),
            last_interaction_at=Subquery(_last_interaction()),
        )
    )


def add_overridden_bands(customers: Iterable[Customer]) -> list[Customer]:
    """The customers, each with ``overridden_band``: the band of the override
    in effect today (None without one), whatever the date of its score, the
    band the team acts on now. One query, for a page of rows: as a column
    of ``customer_scores`` it would be read for every row of the book
    before sorting."""
    # Read from the overrides, not from the snapshot: an override made or
    # ended today shows at once, before any re-score stamps the snapshot.
    customers = list(customers)
    bands: dict[int, str] = {}
    overrides = overrides_in_effect(today(), [c.pk for c in customers])
    for customer_id, band in overrides.values_list("customer_id", "band"):
        bands.setdefault(customer_id, band)
    for customer in customers:
        customer.overridden_band = bands.get(customer.pk)
    return customers


def _last_interaction() -> QuerySet:
    return (
        Interaction.objects.filter(customer=OuterRef("pk"))
        .order_by("-occurred_at")
        .values("occurred_at")[:1]
    )


def declined(customers: QuerySet, points: float = DECLINE_POINTS) -> QuerySet:
    """Customers of ``customer_scores`` whose score fell by ``points`` or
    more."""
    return customers.filter(delta__lte=-points + _FLOAT_SLACK)


def unscored(customers: QuerySet) -> QuerySet:
    """Customers of ``customer_scores`` never scored or scored ``unscored``."""

    return customers.filter(Q(band__isnull=True) | Q(band="unscored"))


def likely_lost(customers: QuerySet, as_of: date, days: int = 90) -> QuerySet:
    """Very unhealthy now, very unhealthy ``days`` days ago (a snapshot at
    most seven days older than that day), never out of the band since, and
    no better now than then."""

    then = as_of - timedelta(days=days)
    then_snapshot = (
        official_snapshots()
        .filter(
            customer=OuterRef("pk"),
            as_of__lte=then,
            as_of__gte=then - timedelta(days=BASELINE_SLACK_DAYS),
        )
        .order_by("-as_of", "-computed_at", "-pk")
    )
    left_the_band = (
        official_snapshots()
        .filter(customer=OuterRef("pk"), as_of__gt=then, as_of__lte=as_of)
        .exclude(band="very_unhealthy")
    )
    return (
        customers.filter(band="very_unhealthy")
        .annotate(
            band_back_then=Subquery(then_snapshot.values("band")[:1]),
            score_back_then=Subquery(then_snapshot.values("score")[:1]),
        )
        .filter(
            band_back_then="very_unhealthy",
            score__lte=F("score_back_then") + _FLOAT_SLACK,
        )
        .exclude(Exists(left_the_band))
    )


def product_counts_subquery():
    """Distinct products of won opportunities, per customer, as a subquery
    for ``customer_scores`` rows (0 when none)."""

    products = (
        Opportunity.objects.filter(customer=OuterRef("pk"), stage="won")
        .exclude(product="")
        .values("customer")
        .annotate(n=Count("product", distinct=True))
        .values("n")
    )
    return Coalesce(Subquery(products, output_field=IntegerField()), 0)


def customers_in_order(customers: QuerySet, ids: Iterable[int]) -> list[Customer]:
    """The rows of ``customers`` with the given ids, in that order, each with
    its ``overridden_band``. Two queries.

    A page sorts the whole book on its ids and reads whole rows for the page
    only: sorting 100,000 whole rows (with their owners joined) cost about
    three times as much as sorting their ids."""
    ids = list(ids)
    rows = customers.filter(pk__in=ids).order_by().in_bulk(ids)
    return add_overridden_bands(rows[pk] for pk in ids if pk in rows)


def biggest_movers(
    customers: QuerySet, count: int = 10
) -> tuple[list[Customer], list[Customer]]:
    """The ``count`` rows of ``customer_scores`` whose score fell the most
    over 30 days, and the ``count`` that rose the most; ties by name. Each
    row has its ``overridden_band``. Four queries: each end is a top-N sort
    of ids in one pass over the book (ranking both ends in one pass with a
    window function sorts the whole book, and costs more), then the rows."""

    moved = customers.filter(delta__isnull=False).values_list("pk", flat=True)
    down = list(moved.filter(delta__lt=0).order_by("delta", "name")[:count])
    up = list(moved.filter(delta__gt=0).order_by("-delta", "name")[:count])
    rows = customers_in_order(customers.select_related(None), down + up)
    fell = set(down)
    return [c for c in rows if c.pk in fell], [c for c in rows if c.pk not in fell]


def band_mix_by_month(month_ends: list[date]) -> dict[date, dict[str, int]]:
    """The band mix at each month end, from the day in the seven days up to
    it that holds the most official snapshots (a score-all run scores every
    customer on one day; single re-scores add a few on other days). Month
    ends with no snapshot near them are left out.

    Reads the days' band tallies, and counts the snapshots of days without
    one (new, or written since they were counted), keeping what it counted:
    one query, two more when some day is counted (an empty day too, so that
    it is not counted again).
    """
    days = {
        end - timedelta(days=back): end
        for end in month_ends
        for back in range(BASELINE_SLACK_DAYS)
    }
    per_day: dict[date, dict[str, int]] = {}
    for day, band, n in BandTally.objects.filter(as_of__in=list(days)).values_list(
        "as_of", "band", "snapshots"
    ):
        counts = per_day.setdefault(day, {})
        if band != BandTally.EMPTY_DAY:
            counts[band] = n

    uncounted = [day for day in days if day not in per_day]
    if uncounted:
        counted = (
            official_snapshots()
            .filter(as_of__in=uncounted)
            .values_list("as_of", "band")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for day, band, n in counted:
            per_day.setdefault(day, {})[band] = n
        tallies = [
            BandTally(as_of=day, band=band, snapshots=n)
            for day in uncounted
            for band, n in (per_day.get(day) or {BandTally.EMPTY_DAY: 0}).items()
        ]
        # TODO: a score run that commits between the count and this write
        # leaves its day counted without it until the day is written again
        # (a lock per day would close the gap; the next run of the day does).
        BandTally.objects.bulk_create(tallies, ignore_conflicts=True)

    mix: dict[date, dict[str, int]] = {}
    for end in month_ends:
        candidates = [
            (sum(per_day[day].values()), day)
            for day, month_end in days.items()
            if month_end == end and per_day.get(day)
        ]
        if candidates:
            mix[end] = per_day[max(candidates)[1]]
    return mix


def books_and_band_mix(
    customers: QuerySet,
) -> tuple[dict[int | None, dict], dict[str, int]]:
    """Per owner id of ``customer_scores`` rows: customers, ARR and the
    unhealthy count (the two lowest bands); and customers per band key
    (never scored counts as ``unscored``). One query, one pass over the
    book for both."""

    books: dict[int | None, dict] = {}
    mix: dict[str, int] = {}
    rows = (
        customers.values_list("owner", "band")
        .annotate(n=Count("pk"), arr=Sum("arr"))
        .order_by()
    )
    for owner, band, n, arr in rows:
        book = books.setdefault(
            owner, {"owner": owner, "customers": 0, "arr": 0, "unhealthy": 0}
        )
        book["customers"] += n
        book["arr"] += arr or 0
        if band in LOW_BANDS:
            book["unhealthy"] += n
        key = band or "unscored"
        mix[key] = mix.get(key, 0) + n
    return books, mix


def newest_snapshot(customer_id: int) -> ScoreSnapshot | None:
    """The customer's newest official snapshot, with its model. One query."""
    return (
        official_snapshots()
        .filter(customer_id=customer_id)
        .select_related("model")
        .order_by("-as_of", "-computed_at", "-pk")
        .first()
    )


def baseline_snapshot(
    customer_id: int, as_of: date, days: int = 30
) -> ScoreSnapshot | None:
    """The snapshot a change over ``days`` days up to ``as_of`` starts from
    (DESIGN.md rule 9), or None. One query."""
    return baseline_snapshots(customer_id, as_of, days).first()


def score_history(
    customer_id: int, start: date, end: date
) -> list[tuple[date, float | None]]:
    """(as_of, score) per day with an official snapshot in [start, end],
    oldest first; the snapshot computed last wins a day. One query."""
    rows = (
        official_snapshots()
        .filter(customer_id=customer_id, as_of__gte=start, as_of__lte=end)
        .order_by("as_of", "computed_at", "pk")
        .values_list("as_of", "score")
    )
    return list(dict(rows).items())
