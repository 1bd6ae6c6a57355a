"""Reads of the ``playbooks`` app that views, template tags and services
share."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import (
    BooleanField,
    Case,
    Count,
    DateField,
    Exists,
    ExpressionWrapper,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from health import jobs
from health.models import Customer, ScoreSnapshot
from health.scoring import BANDS, band_rank
from playbooks.models import Assignment, Playbook, Task
from workbench.roles import is_manager

RECOVERY_WINDOW_DAYS = 90


# --- Snapshots -----------------------------------------------------------------


def current_band(customer_id: int) -> str | None:
    """The band of the customer's current score, the one the pages show
    (None before its first score). One query."""
    return (
        Customer.objects.filter(pk=customer_id)
        .values_list("current_band", flat=True)
        .first()
    )


@dataclass(frozen=True)
class BandRun:
    """A customer's current stay in one band, up to a date."""

    band: str
    started_on: date
    days: int  # daily snapshots in the band, in a row
    entered_from: str | None  # the band before; None from a first snapshot


def newest_snapshot_ids(customer_ids: Iterable[int]) -> dict[int, int]:
    """Each customer's newest snapshot id, by customer id; customers without
    snapshots are left out. One query."""
    newest = ScoreSnapshot.objects.filter(customer=OuterRef("pk")).order_by(
        "-as_of", "-computed_at"
    )
    rows = (
        Customer.objects.filter(pk__in=list(customer_ids))
        .annotate(newest_id=Subquery(newest.values("pk")[:1]))
        .filter(newest_id__isnull=False)
        .values_list("pk", "newest_id")
    )
    return dict(rows)


def band_runs(snapshot_ids: Iterable[int]) -> dict[int, BandRun | None]:
    """The stay in its band that each snapshot belongs to, by snapshot id,
    each at its own customer and date. None where the customer's newest
    snapshot up to that date is in another band than the snapshot (its run is
    not the snapshot's). One query, whatever the number of snapshots."""
    upto = ScoreSnapshot.objects.filter(
        customer=OuterRef("customer"), as_of__lte=OuterRef("as_of")
    ).order_by("-as_of", "-computed_at")
    before = upto.exclude(band=OuterRef("band"))
    # A run with nothing before it started with the customer's history.
    run = upto.filter(
        band=OuterRef("band"), as_of__gt=OuterRef("before_or_start")
    ).order_by()
    run = run.values("customer")
    rows = (
        ScoreSnapshot.objects.filter(pk__in=list(snapshot_ids))
        .annotate(
            latest_band=Subquery(upto.values("band")[:1]),
            before_on=Subquery(before.values("as_of")[:1]),
            before_band=Subquery(before.values("band")[:1]),
            before_or_start=Coalesce(
                "before_on", Value(date.min), output_field=DateField()
            ),
            started_on=Subquery(run.annotate(first=Min("as_of")).values("first")),
            days=Subquery(run.annotate(n=Count("as_of", distinct=True)).values("n")),
        )
        .values_list("pk", "band", "latest_band", "before_band", "started_on", "days")
    )
    runs: dict[int, BandRun | None] = {}
    for pk, band, latest_band, before_band, started_on, days in rows:
        if latest_band != band:
            runs[pk] = None
            continue
        runs[pk] = BandRun(
            band=band, started_on=started_on, days=days, entered_from=before_band
        )
    return runs


def newest_snapshots_on(as_of: date, *, bands: set[str]) -> list[ScoreSnapshot]:
    """Snapshots dated ``as_of`` in one of ``bands`` that are their
    customer's newest, with the customer and its owner; one query."""
    later = ScoreSnapshot.objects.filter(customer=OuterRef("customer"), as_of__gt=as_of)
    return list(
        ScoreSnapshot.objects.filter(as_of=as_of, band__in=bands)
        .exclude(Exists(later))
        .select_related("customer", "customer__owner")
        .order_by("customer_id")
    )


# --- Tasks ----------------------------------------------------------------------


def open_tasks() -> QuerySet[Task]:
    """Tasks not done, of assignments still open."""
    return Task.objects.filter(
        done_at__isnull=True, assignment__status=Assignment.Status.OPEN
    )


def with_overdue(tasks: QuerySet[Task], today: date | None = None) -> QuerySet[Task]:
    today = today or jobs.today()
    return tasks.annotate(
        is_overdue=Case(
            When(due_on__lt=today, then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        )
    )


def completable_tasks(user: AbstractBaseUser) -> QuerySet[Task]:
    """Open tasks the user may complete: their own, those on customers they
    own, or any for a manager."""
    tasks = open_tasks().select_related("assignment")
    if is_manager(user):
        return tasks
    return tasks.filter(Q(assignment__owner=user) | Q(assignment__customer__owner=user))


def may_complete(user: AbstractBaseUser, task: Task) -> bool:
    """``completable_tasks`` for one task already loaded, without a query."""
    if not user.is_authenticated:
        return False
    return (
        is_manager(user)
        or task.assignment.owner_id == user.pk
        or task.assignment.customer.owner_id == user.pk
    )


def tasks_of(user: AbstractBaseUser, today: date | None = None) -> QuerySet[Task]:
    """The user's open tasks, overdue first, then by due date."""
    tasks = open_tasks().filter(assignment__owner=user)
    return (
        with_overdue(tasks, today)
        .select_related("assignment__customer", "assignment__playbook")
        .order_by("-is_overdue", "due_on", "assignment__customer__name", "position")
    )


def customer_open_tasks(customer_id: int, today: date | None = None):
    tasks = open_tasks().filter(assignment__customer_id=customer_id)
    return (
        with_overdue(tasks, today)
        .select_related(
            "assignment__playbook", "assignment__owner", "assignment__customer"
        )
        .order_by("due_on", "position")
    )


def open_task_counts(customer_ids: list[int]) -> dict[int, int]:
    """Open tasks per customer id; one query."""
    rows = (
        open_tasks()
        .filter(assignment__customer_id__in=customer_ids)
        .values("assignment__customer_id")
        .annotate(n=Count("pk"))
        .values_list("assignment__customer_id", "n")
    )
    return dict(rows)


def overdue_task_counts_by_owner(today: date | None = None) -> dict[int, int]:
    """Overdue open tasks per owner (user id); one query."""
    rows = (
        open_tasks()
        .filter(due_on__lt=today or jobs.today(), assignment__owner__isnull=False)
        .values("assignment__owner_id")
        .annotate(n=Count("pk"))
        .values_list("assignment__owner_id", "n")
    )
    return dict(rows)


# --- Assignments -------------------------------------------------------------------


def board(
    *,
    status: str = "",
    owner_id: int | None = None,
    overdue: bool = False,
    today: date | None = None,
) -> QuerySet[Assignment]:
    """Assignments for the managers' board, with open and overdue task
    counts; overdue ones first."""
    today = today or jobs.today()
    open_task = Q(tasks__done_at__isnull=True, status=Assignment.Status.OPEN)
    overdue_task = open_tasks().filter(assignment=OuterRef("pk"), due_on__lt=today)

    assignments = Assignment.objects.select_related(
        "customer", "playbook", "owner", "assigned_by"
    ).annotate(
        open_tasks=Count("tasks", filter=open_task),
        overdue_tasks=Count("tasks", filter=open_task & Q(tasks__due_on__lt=today)),
        is_overdue=Exists(overdue_task),
    )
    if status:
        assignments = assignments.filter(status=status)
    if owner_id is not None:
        assignments = assignments.filter(owner_id=owner_id)
    if overdue:
        assignments = assignments.filter(is_overdue=True)
    return assignments.order_by("-is_overdue", "due_on", "customer__name", "pk")


# --- Effectiveness ---------------------------------------------------------------


@dataclass
class PlaybookStats:
    playbook: Playbook
    assignments: int = 0
    completed: int = 0
    ended: int = 0  # completed or cancelled
    recovered: int = 0
    judged: int = 0  # assignments whose recovery can be told by now
    days_to_complete: list[int] | None = None

    @property
    def completion_rate(self) -> float | None:
        return self.completed / self.ended if self.ended else None

    @property
    def median_days_to_complete(self) -> float | None:
        days = self.days_to_complete or []
        return statistics.median(days) if days else None

    @property
    def recovery_rate(self) -> float | None:
        return self.recovered / self.judged if self.judged else None


def _recovered_expression():
    """True when the assignment's customer reached a better band than the
    assignment's within the recovery window after it opened."""
    deadline = ExpressionWrapper(
        OuterRef("opened_on") + timedelta(days=RECOVERY_WINDOW_DAYS),
        output_field=DateField(),
    )
    window = ScoreSnapshot.objects.filter(
        customer=OuterRef("customer"),
        as_of__gt=OuterRef("opened_on"),
        as_of__lte=deadline,
    )
    return Case(
        *[
            When(band=band, then=Exists(window.filter(band__in=BANDS[rank + 1 :])))
            for rank, band in enumerate(BANDS[:-1])
        ],
        default=Value(False),
        output_field=BooleanField(),
    )


def effectiveness(today: date | None = None) -> list[PlaybookStats]:
    """Per playbook, from the whole history of its assignments:

    - assignments: all of them, whatever their status;
    - completion rate: completed / (completed + cancelled); obsolete ones
      ended because the customer recovered, not for want of work;
    - median days to complete: from opened to closed, completed ones only;
    - recovery rate: recovered / judged, over assignments not cancelled whose
      band has a better one, where recovered means a snapshot in a better
      band within 90 days after opening, and judged means recovered or with
      the 90 days over (an assignment still inside its window and not yet
      recovered tells nothing yet).

    Two queries."""
    today = today or jobs.today()
    stats = {
        p.pk: PlaybookStats(p, days_to_complete=[]) for p in Playbook.objects.all()
    }
    rows = Assignment.objects.annotate(recovered=_recovered_expression()).values_list(
        "playbook_id", "status", "band", "opened_on", "closed_at", "recovered"
    )
    for playbook_id, status, band, opened_on, closed_at, recovered in rows:
        row = stats[playbook_id]
        row.assignments += 1
        if status == Assignment.Status.DONE:
            row.completed += 1
            row.ended += 1
            row.days_to_complete.append((closed_at.date() - opened_on).days)
        elif status == Assignment.Status.CANCELLED:
            row.ended += 1
            continue

        rank = band_rank(band)
        if rank is None or rank == len(BANDS) - 1:
            continue
        window_over = opened_on + timedelta(days=RECOVERY_WINDOW_DAYS) <= today
        if recovered or window_over:
            row.judged += 1
            row.recovered += bool(recovered)
    return sorted(
        stats.values(), key=lambda s: (band_rank(s.playbook.band) or 0, s.playbook.name)
    )


def customers_matching(
    *, band: str = "", segment: str = "", owner_id: int | None = None
):
    """Current customers by the band of their current score (as the pages
    show it), segment and owner; for bulk assignment."""
    customers = Customer.objects.filter(churned_on__isnull=True).select_related("owner")
    if band:
        customers = customers.filter(current_band=band)
    if segment:
        customers = customers.filter(segment=segment)
    if owner_id is not None:
        customers = customers.filter(owner_id=owner_id)
    return customers.order_by("name")
