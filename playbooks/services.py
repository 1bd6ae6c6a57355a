"""Every write of the ``playbooks`` app: assigning playbooks, closing them,
completing their tasks.

Views, admin, commands and the band-change receiver call these functions and
hold no business logic of their own.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from health import jobs
from health.demo import DEMO_PREFIX
from health.models import Customer, Interaction, ScoreSnapshot
from health.scoring import BANDS, band_rank
from playbooks import selectors
from playbooks.models import Assignment, Playbook, Task

logger = logging.getLogger(__name__)


# --- Assigning -----------------------------------------------------------------


def assign_playbook(
    *,
    playbook: Playbook,
    customer: Customer,
    assigned_by: AbstractBaseUser | None = None,
    owner: AbstractBaseUser | None = None,
    opened_on: date | None = None,
    band: str | None = None,
    trigger_snapshot: ScoreSnapshot | None = None,
) -> Assignment | None:
    """Give ``playbook`` to ``customer``: one assignment and a task per step.

    The owner defaults to the customer's CSM. Returns None, and writes
    nothing, when an open assignment of the playbook exists already.
    ``assigned_by`` None means automatic.
    """
    opened_on = opened_on or jobs.today()
    if band is None:
        band = selectors.current_band(customer.pk) or ""
    steps = list(playbook.steps.all())
    last_due = max((s.due_in_days for s in steps), default=0)

    try:
        # The savepoint keeps the caller's transaction usable when a
        # concurrent worker won the race for the one open assignment.
        with transaction.atomic():
            if Assignment.objects.filter(
                customer=customer, playbook=playbook, status=Assignment.Status.OPEN
            ).exists():
                return None
            assignment = Assignment.objects.create(
                playbook=playbook,
                customer=customer,
                owner=owner or customer.owner,
                assigned_by=assigned_by,
                band=band,
                opened_on=opened_on,
                due_on=opened_on + timedelta(days=last_due),
                trigger_snapshot=trigger_snapshot,
            )
            Task.objects.bulk_create(_tasks_of(assignment, steps))
    except IntegrityError:
        return None

    if assignment.owner_id is None:
        logger.info(
            "Playbook %s assigned to customer %s, which has no owner",
            playbook.pk,
            customer.pk,
        )
    return assignment


def assign_playbook_bulk(
    *,
    playbook: Playbook,
    customers: Iterable[Customer],
    assigned_by: AbstractBaseUser,
) -> tuple[int, int]:
    """Give ``playbook`` to each customer; return (assigned, skipped), where
    skipped customers already had it open. One transaction; a few queries
    per customer."""
    assigned = skipped = 0
    with transaction.atomic():
        for customer in customers:
            if assign_playbook(
                playbook=playbook, customer=customer, assigned_by=assigned_by
            ):
                assigned += 1
            else:
                skipped += 1
    logger.info(
        "Playbook %s assigned to %d customers by user %s (%d had it open)",
        playbook.pk,
        assigned,
        assigned_by.pk,
        skipped,
    )
    return assigned, skipped


def reassign_assignment(
    *, assignment: Assignment, owner: AbstractBaseUser, by: AbstractBaseUser
) -> Assignment:
    """Hand an open assignment, with its open tasks, to another user."""
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if assignment.status != Assignment.Status.OPEN:
            raise ValueError("only an open assignment can be reassigned")
        previous = assignment.owner_id
        assignment.owner = owner
        assignment.save(update_fields=["owner"])
    logger.info(
        "Assignment %s reassigned from user %s to user %s by user %s",
        assignment.pk,
        previous,
        owner.pk,
        by.pk,
    )
    return assignment


def cancel_assignment(
    *, assignment: Assignment, reason: str, by: AbstractBaseUser
) -> Assignment:
    """Close an open assignment as cancelled; its open tasks close with it."""
    if not reason.strip():
        raise ValueError("cancelling needs a reason")
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if assignment.status != Assignment.Status.OPEN:
            raise ValueError("only an open assignment can be cancelled")
        assignment.status = Assignment.Status.CANCELLED
        assignment.outcome = Assignment.Outcome.CANCELLED
        assignment.reason = reason.strip()
        assignment.closed_at = timezone.now()
        assignment.save(update_fields=["status", "outcome", "reason", "closed_at"])
    logger.info("Assignment %s cancelled by user %s", assignment.pk, by.pk)
    return assignment


# --- Completing ----------------------------------------------------------------


def complete_task(
    *, task: Task, user: AbstractBaseUser, note: str = "", sentiment: int = 0
) -> Task:
    """Mark a task done with a note. A step that logs an interaction creates
    the customer's interaction and re-scores it after commit; the last open
    task closes the assignment as done."""
    now = timezone.now()
    with transaction.atomic():
        task = (
            Task.objects.select_for_update()
            .select_related("assignment")
            .get(pk=task.pk)
        )
        assignment = task.assignment
        if task.done_at is not None or assignment.status != Assignment.Status.OPEN:
            raise ValueError("only an open task can be completed")

        if task.logs_interaction:
            task.interaction = Interaction.objects.create(
                customer_id=assignment.customer_id,
                csm=user,
                kind=task.interaction_kind,
                occurred_at=now,
                sentiment=sentiment,
                summary=f"{task.title}: {note}" if note else task.title,
            )
            jobs.request_rescore([assignment.customer_id])

        task.done_at = now
        task.done_by = user
        task.note = note
        task.save(update_fields=["done_at", "done_by", "note", "interaction"])

        if not assignment.tasks.filter(done_at__isnull=True).exists():
            assignment.status = Assignment.Status.DONE
            assignment.outcome = Assignment.Outcome.COMPLETED
            assignment.closed_at = now
            assignment.save(update_fields=["status", "outcome", "closed_at"])
    return task


# --- Reacting to bands ---------------------------------------------------------

# One band change as ``health.signals.bands_changed`` sends it: customer id,
# snapshot id, old band (None for a first snapshot) and new band.
BandChange = tuple[int, int | None, str | None, str]


def close_recovered_assignments(*, new_bands: dict[int, str]) -> int:
    """Close the open assignments of playbooks for bands worse than each
    customer's new band (``new_bands`` maps customer ids to bands) as
    obsolete, outcome recovered; return how many. Two queries, none when no
    band has a worse one."""
    by_band: dict[str, list[int]] = defaultdict(list)
    for customer_id, band in new_bands.items():
        if band_rank(band):  # None or 0: no band is worse
            by_band[band].append(customer_id)
    if not by_band:
        return 0

    worse = Q()
    for band, customer_ids in by_band.items():
        worse |= Q(
            customer_id__in=customer_ids,
            playbook__band__in=BANDS[: band_rank(band)],
        )
    rows = list(
        Assignment.objects.filter(worse, status=Assignment.Status.OPEN).values_list(
            "pk", "customer_id"
        )
    )
    if not rows:
        return 0

    closed = Assignment.objects.filter(
        pk__in=[pk for pk, _ in rows], status=Assignment.Status.OPEN
    ).update(
        status=Assignment.Status.OBSOLETE,
        outcome=Assignment.Outcome.RECOVERED,
        closed_at=timezone.now(),
    )
    for customer_id, count in sorted(Counter(c for _, c in rows).items()):
        logger.info(
            "Customer %s recovered to %s: %d assignments closed as obsolete",
            customer_id,
            new_bands[customer_id],
            count,
        )
    return closed


def _assign_held_playbooks(snapshots: list[ScoreSnapshot]) -> list[Assignment]:
    """Assign, for each snapshot (its customer's newest, with the customer
    and its owner loaded), the playbooks of its band whose hold is reached
    exactly at that snapshot; return the new assignments.

    "Exactly" keeps the rule the same for every required number of days: a
    playbook is due once per entry into the band, at the snapshot that
    completes its hold, never again for a band held since long ago.

    Four queries and two inserts whatever the number of snapshots (fewer
    when nothing is due); call it inside a transaction."""
    runs = selectors.band_runs(s.pk for s in snapshots)
    held = [(s, runs[s.pk]) for s in snapshots if runs.get(s.pk) is not None]
    if not held:
        return []

    playbooks: dict[str, list[Playbook]] = defaultdict(list)
    for playbook in Playbook.objects.filter(
        is_active=True, band__in={run.band for _, run in held}
    ).prefetch_related("steps"):
        playbooks[playbook.band].append(playbook)

    due = [
        (snapshot, run, playbook)
        for snapshot, run in held
        for playbook in playbooks[run.band]
        if run.days == playbook.required_days
        and (not playbook.from_bands or run.entered_from in playbook.from_bands)
    ]
    if not due:
        return []

    # What stops a due playbook: an open assignment of it, or an automatic
    # one opened earlier in this same stay in the band (the day was scored
    # twice and the first one is done by now).
    earliest = min(run.started_on for _, run, _ in due)
    existing = Assignment.objects.filter(
        customer_id__in={s.customer_id for s, _, _ in due},
        playbook_id__in={p.pk for _, _, p in due},
    ).filter(
        Q(status=Assignment.Status.OPEN)
        | Q(assigned_by__isnull=True, opened_on__gte=earliest)
    )
    open_pairs: set[tuple[int, int]] = set()
    automatic_since: dict[tuple[int, int], list[date]] = defaultdict(list)
    for (
        customer_id,
        playbook_id,
        status,
        assigned_by_id,
        opened_on,
    ) in existing.values_list(
        "customer_id", "playbook_id", "status", "assigned_by_id", "opened_on"
    ):
        if status == Assignment.Status.OPEN:
            open_pairs.add((customer_id, playbook_id))
        if assigned_by_id is None:
            automatic_since[customer_id, playbook_id].append(opened_on)

    wanted = []
    for snapshot, run, playbook in due:
        key = (snapshot.customer_id, playbook.pk)
        if key in open_pairs:
            continue
        if any(opened >= run.started_on for opened in automatic_since[key]):
            continue
        open_pairs.add(key)  # a second snapshot of the customer gets no copy
        wanted.append((snapshot, run, playbook))
    if not wanted:
        return []

    try:
        # The savepoint keeps the caller's transaction usable when a
        # concurrent worker opened one of these first.
        with transaction.atomic():
            assigned = _create_assignments(wanted)
    except IntegrityError:
        # Rare: fall back to one at a time, each skipping what is open.
        assigned = []
        for snapshot, run, playbook in wanted:
            assignment = assign_playbook(
                playbook=playbook,
                customer=snapshot.customer,
                opened_on=snapshot.as_of,
                band=run.band,
                trigger_snapshot=snapshot,
            )
            if assignment:
                assigned.append(assignment)
        return assigned

    for assignment in assigned:
        if assignment.owner_id is None:
            logger.info(
                "Playbook %s assigned to customer %s, which has no owner",
                assignment.playbook_id,
                assignment.customer_id,
            )
    return assigned


def _create_assignments(
    wanted: list[tuple[ScoreSnapshot, selectors.BandRun, Playbook]],
) -> list[Assignment]:
    """The automatic assignments and their tasks; two inserts."""
    assignments = []
    for snapshot, run, playbook in wanted:
        steps = list(playbook.steps.all())
        last_due = max((s.due_in_days for s in steps), default=0)
        assignments.append(
            Assignment(
                playbook=playbook,
                customer=snapshot.customer,
                owner=snapshot.customer.owner,
                band=run.band,
                opened_on=snapshot.as_of,
                due_on=snapshot.as_of + timedelta(days=last_due),
                trigger_snapshot=snapshot,
            )
        )
    Assignment.objects.bulk_create(assignments)

    Task.objects.bulk_create(
        [
            task
            for assignment in assignments
            for task in _tasks_of(assignment, assignment.playbook.steps.all())
        ]
    )
    return assignments


def _tasks_of(assignment: Assignment, steps) -> list[Task]:
    """One unsaved task per step, due that many days after the assignment
    opens."""
    return [
        Task(
            assignment=assignment,
            step=step,
            position=step.position,
            title=step.title,
            guidance=step.guidance,
            interaction_kind=step.interaction_kind,
            due_on=assignment.opened_on + timedelta(days=step.due_in_days),
        )
        for step in steps
    ]


def handle_band_changes(
    *, as_of: date, changes: Iterable[BandChange]
) -> list[Assignment]:
    """React to a batch of band changes at ``as_of``: close what recovery
    made obsolete, then assign the playbooks that are due. Returns the new
    assignments.

    A change dated before the customer's newest snapshot is history being
    filled in, and assigns nothing. A fixed number of queries (about ten)
    and two inserts per batch; a customer changing twice in one batch costs
    one more round, so that its changes apply in order."""
    rounds: list[list[BandChange]] = []
    seen: Counter[int] = Counter()
    for change in changes:
        occurrence = seen[change[0]]
        seen[change[0]] += 1
        if occurrence == len(rounds):
            rounds.append([])
        rounds[occurrence].append(change)

    assigned = []
    for round_ in rounds:
        assigned += _handle_band_changes_once(as_of=as_of, changes=round_)
    return assigned


def _handle_band_changes_once(
    *, as_of: date, changes: list[BandChange]
) -> list[Assignment]:
    """``handle_band_changes`` for changes of distinct customers."""
    newest_ids = selectors.newest_snapshot_ids(c[0] for c in changes)
    wanted_ids = set(newest_ids.values()) | {c[1] for c in changes if c[1]}
    # The breakdowns are the bulk of a snapshot and nothing here reads them.
    snapshots = (
        ScoreSnapshot.objects.select_related("customer__owner")
        .defer("breakdown")
        .in_bulk(wanted_ids)
    )

    current: list[ScoreSnapshot] = []
    recovered: dict[int, str] = {}
    new_bands: dict[int, str] = {}
    for customer_id, snapshot_id, old_band, new_band in changes:
        newest = snapshots.get(newest_ids.get(customer_id))
        if newest is None or newest.as_of > as_of:
            logger.info(
                "Band change of customer %s as of %s ignored: not its newest date",
                customer_id,
                as_of,
            )
            continue
        snapshot = newest
        if snapshot_id is not None and snapshot_id != newest.pk:
            snapshot = snapshots.get(snapshot_id) or newest
        current.append(snapshot)
        new_bands[customer_id] = new_band

        old_rank, new_rank = band_rank(old_band or ""), band_rank(new_band)
        if old_rank is not None and new_rank is not None and new_rank > old_rank:
            recovered[customer_id] = new_band

    if not current:
        return []
    with transaction.atomic():
        close_recovered_assignments(new_bands=recovered)
        assigned = _assign_held_playbooks(current)

    by_customer: dict[int, list[str]] = defaultdict(list)
    for assignment in assigned:
        by_customer[assignment.customer_id].append(assignment.playbook.name)
    for customer_id, names in by_customer.items():
        logger.info(
            "Customer %s entered %s: assigned %s",
            customer_id,
            new_bands[customer_id],
            ", ".join(names),
        )
    return assigned


def assign_held_playbooks(
    *, as_of: date | None = None, customer_ids: Iterable[int] | None = None
) -> int:
    """Assign playbooks that need their band held for more than one daily
    snapshot and reached that hold at a customer's newest snapshot on
    ``as_of`` (default today). Run it after each day's scoring; a band
    change itself only fires once, on the day it happens. Returns how many
    assignments it made; a fixed number of queries (about eight)."""
    as_of = as_of or jobs.today()
    bands = set(
        Playbook.objects.filter(is_active=True, required_days__gt=1).values_list(
            "band", flat=True
        )
    )
    if not bands:
        return 0

    snapshots = selectors.newest_snapshots_on(as_of, bands=bands)
    if customer_ids is not None:
        wanted = set(customer_ids)
        snapshots = [s for s in snapshots if s.customer_id in wanted]

    with transaction.atomic():
        count = len(_assign_held_playbooks(snapshots))
    logger.info("Held-band check as of %s: %d assignments", as_of, count)
    return count


# --- Demo ----------------------------------------------------------------------


def seed_demo_assignments(
    *, as_of: date | None = None, prefix: str = DEMO_PREFIX, max_age_days: int = 30
) -> int:
    """Give every current customer of the demo book (external id starting
    with ``prefix``) without open work the playbooks of its band, opened on
    the day it entered the band (at most ``max_age_days`` ago, so some tasks
    are overdue). For demo books only: real work comes
    from band changes, never from a sweep over the past. Returns how many
    assignments it made."""
    as_of = as_of or jobs.today()
    playbooks: dict[str, list[Playbook]] = {}
    for playbook in Playbook.objects.filter(is_active=True).prefetch_related("steps"):
        playbooks.setdefault(playbook.band, []).append(playbook)

    snapshots = [
        snapshot
        for snapshot in selectors.newest_snapshots_on(as_of, bands=set(playbooks))
        if snapshot.customer.churned_on is None
        and snapshot.customer.external_id.startswith(prefix)
    ]
    runs = selectors.band_runs(s.pk for s in snapshots)

    count = 0
    with transaction.atomic():
        for snapshot in snapshots:
            customer = snapshot.customer
            run = runs.get(snapshot.pk)
            started = run.started_on if run else as_of
            opened_on = max(started, as_of - timedelta(days=max_age_days))
            for playbook in playbooks[snapshot.band]:
                if assign_playbook(
                    playbook=playbook,
                    customer=customer,
                    opened_on=opened_on,
                    band=snapshot.band,
                    trigger_snapshot=snapshot,
                ):
                    count += 1
    logger.info("Demo playbooks as of %s: %d assignments", as_of, count)
    return count
