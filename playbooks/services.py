"""Every write of the ``playbooks`` app: assigning playbooks, closing them,
completing their tasks.

Views, admin, commands and the band-change receiver call these functions and
hold no business logic of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
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
            Task.objects.bulk_create(
                [
                    Task(
                        assignment=assignment,
                        step=step,
                        position=step.position,
                        title=step.title,
                        guidance=step.guidance,
                        interaction_kind=step.interaction_kind,
                        due_on=opened_on + timedelta(days=step.due_in_days),
                    )
                    for step in steps
                ]
            )
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


def close_recovered_assignments(*, customer_id: int, new_band: str) -> int:
    """Close open assignments of playbooks for bands worse than ``new_band``
    as obsolete, outcome recovered; return how many."""
    rank = band_rank(new_band)
    if rank is None:
        return 0
    closed = Assignment.objects.filter(
        customer_id=customer_id,
        status=Assignment.Status.OPEN,
        playbook__band__in=BANDS[:rank],
    ).update(
        status=Assignment.Status.OBSOLETE,
        outcome=Assignment.Outcome.RECOVERED,
        closed_at=timezone.now(),
    )
    if closed:
        logger.info(
            "Customer %s recovered to %s: %d assignments closed as obsolete",
            customer_id,
            new_band,
            closed,
        )
    return closed


def _assign_held_playbooks(
    *, customer: Customer, snapshot: ScoreSnapshot
) -> list[Assignment]:
    """Assign the playbooks of the customer's band whose hold is reached
    exactly at ``snapshot``, the customer's newest.

    "Exactly" keeps the rule the same for every required number of days: a
    playbook is due once per entry into the band, at the snapshot that
    completes its hold, never again for a band held since long ago."""
    run = selectors.band_run(customer_id=customer.pk, as_of=snapshot.as_of)
    if run is None or run.band != snapshot.band:
        return []

    assigned = []
    for playbook in Playbook.objects.filter(is_active=True, band=run.band):
        if run.days != playbook.required_days:
            continue
        if playbook.from_bands and run.entered_from not in playbook.from_bands:
            continue
        # A playbook completed earlier in this same stay in the band (the
        # day was scored twice) is not given again.
        if Assignment.objects.filter(
            customer=customer,
            playbook=playbook,
            assigned_by__isnull=True,
            opened_on__gte=run.started_on,
        ).exists():
            continue
        assignment = assign_playbook(
            playbook=playbook,
            customer=customer,
            opened_on=snapshot.as_of,
            band=run.band,
            trigger_snapshot=snapshot,
        )
        if assignment:
            assigned.append(assignment)
    return assigned


def handle_band_change(
    *,
    customer_id: int,
    snapshot_id: int | None,
    as_of: date,
    old_band: str | None,
    new_band: str,
) -> list[Assignment]:
    """React to a customer's band change at ``as_of``: close what recovery
    made obsolete, then assign the playbooks that are due. Returns the new
    assignments.

    A change dated before the customer's newest snapshot is history being
    filled in, and assigns nothing."""
    newest = selectors.newest_snapshot(customer_id)
    if newest is None or newest.as_of > as_of:
        logger.info(
            "Band change of customer %s as of %s ignored: not its newest date",
            customer_id,
            as_of,
        )
        return []
    snapshot = newest
    if snapshot_id is not None and snapshot_id != newest.pk:
        snapshot = ScoreSnapshot.objects.filter(pk=snapshot_id).first() or newest

    with transaction.atomic():
        old_rank, new_rank = band_rank(old_band or ""), band_rank(new_band)
        if old_rank is not None and new_rank is not None and new_rank > old_rank:
            close_recovered_assignments(customer_id=customer_id, new_band=new_band)
        customer = Customer.objects.select_related("owner").get(pk=customer_id)
        assigned = _assign_held_playbooks(customer=customer, snapshot=snapshot)

    if assigned:
        logger.info(
            "Customer %s entered %s: assigned %s",
            customer_id,
            new_band,
            ", ".join(a.playbook.name for a in assigned),
        )
    return assigned


def assign_held_playbooks(
    *, as_of: date | None = None, customer_ids: Iterable[int] | None = None
) -> int:
    """Assign playbooks that need their band held for more than one daily
    snapshot and reached that hold at a customer's newest snapshot on
    ``as_of`` (default today). Run it after each day's scoring; a band
    change itself only fires once, on the day it happens. Returns how many
    assignments it made; a few queries per candidate customer."""
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

    count = 0
    for snapshot in snapshots:
        with transaction.atomic():
            count += len(
                _assign_held_playbooks(customer=snapshot.customer, snapshot=snapshot)
            )
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

    count = 0
    with transaction.atomic():
        for snapshot in selectors.newest_snapshots_on(as_of, bands=set(playbooks)):
            customer = snapshot.customer
            if customer.churned_on is not None:
                continue
            if not customer.external_id.startswith(prefix):
                continue
            run = selectors.band_run(customer_id=customer.pk, as_of=as_of)
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
