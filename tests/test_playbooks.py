"""Playbooks: default plays, automatic assignment on band changes, the
consecutive-days rule, closing on recovery, backfills, manual and bulk
assignment, tasks, and effectiveness on a history worked out by hand."""

from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.template import Context, Template
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from health import jobs, services
from health.models import Customer, Interaction, ScoreModel, ScoreSnapshot
from health.signals import bands_changed
from playbooks import selectors
from playbooks import services as playbook_services
from playbooks.models import Assignment, Playbook, Task
from tests.factories import customer_with_inputs

DAY = date(2026, 3, 2)


@pytest.fixture
def model(db) -> ScoreModel:
    return ScoreModel.objects.get(status="active", segment="")


@pytest.fixture
def customer(csm) -> Customer:
    return Customer.objects.create(
        name="Acme", external_id="ACME", segment="SMB", owner=csm
    )


def snapshot(customer, model, day, band, score=50.0) -> ScoreSnapshot:
    return ScoreSnapshot.objects.create(
        customer=customer,
        model=model,
        as_of=day,
        score=None if band == "unscored" else score,
        band=band,
        coverage=1,
    )


def score_day(customer, model, day, band, old_band) -> ScoreSnapshot:
    """A day's snapshot and its band-change announcement, as the scoring
    service sends it after commit."""
    snap = snapshot(customer, model, day, band)
    bands_changed.send(
        sender=ScoreSnapshot,
        changes=[(customer.pk, snap.pk, old_band, band)],
        as_of=day,
    )
    return snap


def open_playbooks(customer) -> list[str]:
    return sorted(
        Assignment.objects.filter(customer=customer, status="open").values_list(
            "playbook__name", flat=True
        )
    )


# --- Default playbooks ------------------------------------------------------------


def test_default_playbooks_cover_every_band_with_ordered_steps(db):
    playbooks = {p.band: p for p in Playbook.objects.prefetch_related("steps")}

    assert {b: p.name for b, p in playbooks.items()} == {
        "very_unhealthy": "Triage",
        "unhealthy": "Recovery plan",
        "neutral": "Unlock the untapped",
        "healthy": "Expand",
        "very_healthy": "Advocacy",
    }
    for playbook in playbooks.values():
        steps = list(playbook.steps.all())
        assert [s.position for s in steps] == list(range(1, len(steps) + 1))
        assert [s.due_in_days for s in steps] == sorted(s.due_in_days for s in steps)
        assert any(s.logs_interaction for s in steps)
        assert playbook.required_days == 1 and playbook.is_active
    triage = [s.title for s in playbooks["very_unhealthy"].steps.all()]
    assert triage == [
        "Call the executive sponsor",
        "Find the root cause",
        "Decide: rescue plan or likely lost",
    ]
    assert playbooks["healthy"].from_bands == ["very_unhealthy", "unhealthy", "neutral"]


# --- Automatic assignment ---------------------------------------------------------


def test_entering_a_band_assigns_its_playbook_to_the_csm(customer, model, csm):
    snapshot(customer, model, DAY - timedelta(days=1), "unhealthy")

    snap = score_day(customer, model, DAY, "very_unhealthy", "unhealthy")

    assignment = Assignment.objects.get(customer=customer)
    assert assignment.playbook.name == "Triage"
    assert assignment.owner == csm
    assert assignment.assigned_by is None and assignment.is_automatic
    assert assignment.status == "open"
    assert assignment.band == "very_unhealthy"
    assert assignment.trigger_snapshot == snap
    assert (assignment.opened_on, assignment.due_on) == (DAY, DAY + timedelta(days=7))
    tasks = list(assignment.tasks.order_by("position"))
    assert [(t.title, t.due_on, t.interaction_kind) for t in tasks] == [
        ("Call the executive sponsor", DAY + timedelta(days=2), "call"),
        ("Find the root cause", DAY + timedelta(days=5), ""),
        ("Decide: rescue plan or likely lost", DAY + timedelta(days=7), ""),
    ]


def test_scoring_a_band_change_assigns_through_the_signal(
    model, csm, django_capture_on_commit_callbacks
):
    customer = customer_with_inputs(1, DAY, variant=0)
    customer.owner = csm
    customer.save()
    snapshot(customer, model, DAY - timedelta(days=1), "very_healthy", score=90)

    with django_capture_on_commit_callbacks(execute=True):
        services.score_customers(customer_ids=[customer.pk], as_of=DAY)

    band = ScoreSnapshot.objects.get(customer=customer, as_of=DAY).band
    assert band not in ("very_healthy", "healthy", "unscored")
    assignment = Assignment.objects.get(customer=customer)
    assert assignment.playbook.band == band
    assert assignment.owner == csm
    assert assignment.trigger_snapshot.as_of == DAY


def test_a_first_snapshot_assigns_the_playbook_of_its_band(customer, model):
    score_day(customer, model, DAY, "neutral", None)

    assert open_playbooks(customer) == ["Unlock the untapped"]


def test_from_bands_limits_which_entries_assign(customer, model):
    snapshot(customer, model, DAY - timedelta(days=1), "very_healthy")

    score_day(customer, model, DAY, "healthy", "very_healthy")

    # Expand waits for a customer rising into healthy, not one falling.
    assert open_playbooks(customer) == []

    score_day(customer, model, DAY + timedelta(days=1), "neutral", "healthy")
    score_day(customer, model, DAY + timedelta(days=2), "healthy", "neutral")

    assert open_playbooks(customer) == ["Expand"]


def test_no_second_assignment_while_one_is_open(customer, model):
    score_day(customer, model, DAY, "very_unhealthy", "unhealthy")
    score_day(customer, model, DAY + timedelta(days=1), "unscored", "very_unhealthy")

    score_day(customer, model, DAY + timedelta(days=2), "very_unhealthy", "unscored")

    assert Assignment.objects.filter(customer=customer).count() == 1
    assert open_playbooks(customer) == ["Triage"]


def test_rescoring_the_same_day_does_not_assign_again(customer, model, csm):
    snapshot(customer, model, DAY - timedelta(days=1), "unhealthy")
    snap = score_day(customer, model, DAY, "very_unhealthy", "unhealthy")
    assignment = Assignment.objects.get()
    for task in assignment.tasks.all():
        playbook_services.complete_task(task=task, user=csm, note="done")

    # A rerun of the day announces the same change again.
    bands_changed.send(
        sender=ScoreSnapshot,
        changes=[(customer.pk, snap.pk, "unhealthy", "very_unhealthy")],
        as_of=DAY,
    )

    assert Assignment.objects.filter(customer=customer).count() == 1


def test_inactive_playbooks_are_not_assigned(customer, model):
    Playbook.objects.filter(name="Triage").update(is_active=False)

    score_day(customer, model, DAY, "very_unhealthy", "unhealthy")

    assert not Assignment.objects.exists()


def test_a_customer_without_owner_gets_unowned_work(model, caplog):
    customer = Customer.objects.create(name="Orphan", external_id="ORPHAN")

    score_day(customer, model, DAY, "unhealthy", "neutral")

    assignment = Assignment.objects.get()
    assert assignment.owner is None
    assert "has no owner" in caplog.text


# --- Consecutive days -------------------------------------------------------------


def test_a_playbook_waits_until_the_band_held_its_required_days(customer, model):
    Playbook.objects.filter(name="Recovery plan").update(required_days=3)
    snapshot(customer, model, DAY - timedelta(days=1), "neutral")

    score_day(customer, model, DAY, "unhealthy", "neutral")
    assert open_playbooks(customer) == []

    snapshot(customer, model, DAY + timedelta(days=1), "unhealthy")
    assert playbook_services.assign_held_playbooks(as_of=DAY + timedelta(days=1)) == 0
    assert open_playbooks(customer) == []

    held = snapshot(customer, model, DAY + timedelta(days=2), "unhealthy")
    assert playbook_services.assign_held_playbooks(as_of=DAY + timedelta(days=2)) == 1
    assignment = Assignment.objects.get(customer=customer)
    assert assignment.playbook.name == "Recovery plan"
    assert assignment.opened_on == DAY + timedelta(days=2)
    assert assignment.trigger_snapshot == held

    # Holding longer assigns nothing more, even once the first is done.
    Assignment.objects.update(status="done")
    snapshot(customer, model, DAY + timedelta(days=3), "unhealthy")
    assert playbook_services.assign_held_playbooks(as_of=DAY + timedelta(days=3)) == 0


def test_scoring_each_day_assigns_a_playbook_once_its_hold_is_reached(
    model, csm, django_capture_on_commit_callbacks
):
    Playbook.objects.update(required_days=2)
    customer = customer_with_inputs(1, DAY, variant=0)
    customer.owner = csm
    customer.save()

    with django_capture_on_commit_callbacks(execute=True):
        services.score_customers(customer_ids=[customer.pk], as_of=DAY - timedelta(1))
    assert open_playbooks(customer) == []

    with django_capture_on_commit_callbacks(execute=True):
        services.score_customers(customer_ids=[customer.pk], as_of=DAY)

    bands = set(customer.snapshots.values_list("band", flat=True))
    assert len(bands) == 1  # the same band both days: held for two
    assignment = Assignment.objects.get(customer=customer)
    assert assignment.playbook.band == bands.pop()
    assert assignment.opened_on == DAY


def test_a_flapping_band_never_reaches_its_hold(customer, model):
    Playbook.objects.filter(name="Recovery plan").update(required_days=2)
    bands = ["neutral", "unhealthy", "neutral", "unhealthy", "neutral"]

    for offset, band in enumerate(bands):
        day = DAY + timedelta(days=offset)
        old = bands[offset - 1] if offset else None
        score_day(customer, model, day, band, old)
        playbook_services.assign_held_playbooks(as_of=day)

    assert not Assignment.objects.filter(playbook__name="Recovery plan").exists()


def test_the_held_check_ignores_customers_scored_later(customer, model):
    Playbook.objects.filter(name="Recovery plan").update(required_days=2)
    snapshot(customer, model, DAY, "unhealthy")
    snapshot(customer, model, DAY + timedelta(days=1), "unhealthy")
    snapshot(customer, model, DAY + timedelta(days=2), "neutral")

    assert playbook_services.assign_held_playbooks(as_of=DAY + timedelta(days=1)) == 0


def test_assign_playbooks_command_runs_the_held_check(customer, model, capsys):
    Playbook.objects.filter(name="Triage").update(required_days=2)
    snapshot(customer, model, DAY, "very_unhealthy")
    snapshot(customer, model, DAY + timedelta(days=1), "very_unhealthy")

    call_command("assign_playbooks", "--as-of", (DAY + timedelta(days=1)).isoformat())

    assert "1 assignments" in capsys.readouterr().out
    assert open_playbooks(customer) == ["Triage"]


# --- Recovery ---------------------------------------------------------------------


def test_recovering_closes_worse_band_assignments_as_obsolete(customer, model):
    score_day(customer, model, DAY, "unhealthy", "neutral")
    score_day(customer, model, DAY + timedelta(days=1), "very_unhealthy", "unhealthy")
    # Falling further closes nothing.
    assert open_playbooks(customer) == ["Recovery plan", "Triage"]

    score_day(customer, model, DAY + timedelta(days=2), "neutral", "very_unhealthy")

    closed = Assignment.objects.filter(customer=customer, status="obsolete")
    assert sorted(a.playbook.name for a in closed) == ["Recovery plan", "Triage"]
    assert {a.outcome for a in closed} == {"recovered"}
    assert all(a.closed_at for a in closed)
    assert open_playbooks(customer) == ["Unlock the untapped"]
    assert not selectors.open_tasks().filter(assignment__in=closed).exists()


def test_a_partial_recovery_keeps_the_plan_for_the_band_still_reached(customer, model):
    score_day(customer, model, DAY, "unhealthy", "neutral")
    score_day(customer, model, DAY + timedelta(days=1), "very_unhealthy", "unhealthy")

    score_day(customer, model, DAY + timedelta(days=2), "unhealthy", "very_unhealthy")

    assert open_playbooks(customer) == ["Recovery plan"]
    assert Assignment.objects.get(playbook__name="Triage").status == "obsolete"


# --- Batches ----------------------------------------------------------------------


def test_a_chunk_of_changes_costs_the_same_queries_whatever_its_size(model, csm):
    """Half the customers fall into very unhealthy, half recover from
    unhealthy with a recovery plan open; 5 changes cost what 50 do."""
    recovery = Playbook.objects.get(name="Recovery plan")

    def chunk(size: int, prefix: str) -> list[tuple[int, int, str, str]]:
        changes = []
        for n in range(size):
            customer = Customer.objects.create(
                name=f"{prefix}{n}", external_id=f"{prefix}{n}", owner=csm
            )
            old, new = ("neutral", "very_unhealthy")
            if n % 2:
                old, new = ("unhealthy", "neutral")
                playbook_services.assign_playbook(
                    playbook=recovery, customer=customer, opened_on=DAY
                )
            snapshot(customer, model, DAY, old)
            snap = snapshot(customer, model, DAY + timedelta(days=1), new)
            changes.append((customer.pk, snap.pk, old, new))
        return changes

    def queries(changes) -> int:
        with CaptureQueriesContext(connection) as captured:
            playbook_services.handle_band_changes(
                as_of=DAY + timedelta(days=1), changes=changes
            )
        return len(captured)

    small, large = chunk(5, "S"), chunk(50, "L")

    assert queries(small) == queries(large)
    assert Assignment.objects.filter(status="open").count() == 55
    assert Assignment.objects.filter(status="obsolete").count() == 27
    assert Task.objects.filter(assignment__status="open").count() == 55 * 3


# --- Backfill ---------------------------------------------------------------------


def test_a_band_change_older_than_the_newest_snapshot_assigns_nothing(customer, model):
    snapshot(customer, model, DAY, "healthy")
    past = snapshot(customer, model, DAY - timedelta(days=10), "very_unhealthy")

    bands_changed.send(
        sender=ScoreSnapshot,
        changes=[(customer.pk, past.pk, "unhealthy", "very_unhealthy")],
        as_of=past.as_of,
    )

    assert not Assignment.objects.exists()


def test_backfilling_history_assigns_only_at_the_newest_date(
    model, csm, django_capture_on_commit_callbacks
):
    customer = customer_with_inputs(1, DAY, variant=0)
    snapshot(customer, model, DAY - timedelta(days=200), "very_healthy", score=90)
    # An older band elsewhere in the history, which the backfill rewrites.
    snapshot(customer, model, DAY - timedelta(days=100), "very_healthy", score=90)

    with django_capture_on_commit_callbacks(execute=True):
        jobs.start_backfill(dates=[DAY - timedelta(days=100), DAY - timedelta(days=50)])

    # The backfilled dates changed the band from very healthy, but the
    # change is history: nobody gets work for it.
    assert (
        ScoreSnapshot.objects.filter(customer=customer)
        .exclude(band="very_healthy")
        .exists()
    )
    assert not Assignment.objects.exists()


def test_scoring_a_past_date_behind_a_newer_one_assigns_nothing(
    model, django_capture_on_commit_callbacks
):
    customer = customer_with_inputs(1, DAY, variant=0)
    snapshot(customer, model, DAY + timedelta(days=30), "very_healthy", score=90)
    snapshot(customer, model, DAY - timedelta(days=1), "very_healthy", score=90)

    with django_capture_on_commit_callbacks(execute=True):
        services.score_customers(customer_ids=[customer.pk], as_of=DAY)

    assert not Assignment.objects.exists()


# --- Manual and bulk assignment, reassign, cancel ---------------------------------


def test_manual_assignment_skips_an_open_duplicate(customer, manager, other_csm):
    expand = Playbook.objects.get(name="Expand")

    first = playbook_services.assign_playbook(
        playbook=expand, customer=customer, assigned_by=manager, owner=other_csm
    )
    second = playbook_services.assign_playbook(
        playbook=expand, customer=customer, assigned_by=manager
    )

    assert first.assigned_by == manager and first.owner == other_csm
    assert first.band == ""  # never scored
    assert second is None
    assert Assignment.objects.count() == 1
    assert Task.objects.count() == expand.steps.count()


def test_bulk_assignment_gives_each_matching_customer_the_playbook(
    model, manager, csm, other_csm
):
    def make(name, segment, owner, band):
        c = Customer.objects.create(
            name=name, external_id=name, segment=segment, owner=owner
        )
        snapshot(c, model, DAY, band)
        return c

    hit = make("Hit", "SMB", csm, "neutral")
    had_it = make("HadIt", "SMB", csm, "neutral")
    make("OtherBand", "SMB", csm, "healthy")
    make("OtherSegment", "Enterprise", csm, "neutral")
    make("OtherOwner", "SMB", other_csm, "neutral")
    gone = make("Churned", "SMB", csm, "neutral")
    gone.churned_on = DAY
    gone.save()
    unlock = Playbook.objects.get(name="Unlock the untapped")
    playbook_services.assign_playbook(playbook=unlock, customer=had_it)
    customers = selectors.customers_matching(
        band="neutral", segment="SMB", owner_id=csm.pk
    )

    assigned, skipped = playbook_services.assign_playbook_bulk(
        playbook=unlock, customers=customers, assigned_by=manager
    )

    assert (assigned, skipped) == (1, 1)
    assert sorted(
        Assignment.objects.values_list("customer__name", "assigned_by__username")
    ) == [("HadIt", None), ("Hit", "manager")]
    assert Assignment.objects.get(customer=hit).band == "neutral"


def test_bulk_selection_by_band_reads_the_current_score_not_a_draft(
    model, admin_user, csm
):
    from health import tuning

    tried = Customer.objects.create(name="Tried", external_id="TRIED", owner=csm)
    snapshot(tried, model, DAY, "neutral")
    # A draft tried against the same day leaves a newer, unofficial snapshot.
    draft = tuning.clone_model(model=model, author=admin_user)
    snapshot(tried, draft, DAY + timedelta(days=1), "healthy")

    neutral = selectors.customers_matching(band="neutral")
    healthy = selectors.customers_matching(band="healthy")

    assert [c.name for c in neutral] == ["Tried"]
    assert list(healthy) == []
    assert selectors.current_band(tried.pk) == "neutral"


def test_reassigning_hands_the_open_tasks_over(customer, manager, csm, other_csm):
    assignment = playbook_services.assign_playbook(
        playbook=Playbook.objects.get(name="Advocacy"), customer=customer
    )
    assert selectors.tasks_of(csm).count() == 3

    playbook_services.reassign_assignment(
        assignment=assignment, owner=other_csm, by=manager
    )

    assert selectors.tasks_of(csm).count() == 0
    assert selectors.tasks_of(other_csm).count() == 3
    assert Assignment.objects.get().owner == other_csm


def test_cancelling_needs_a_reason_and_closes_the_tasks(customer, manager, csm):
    assignment = playbook_services.assign_playbook(
        playbook=Playbook.objects.get(name="Advocacy"), customer=customer
    )

    with pytest.raises(ValueError, match="reason"):
        playbook_services.cancel_assignment(
            assignment=assignment, reason="  ", by=manager
        )
    assert Assignment.objects.get().status == "open"

    playbook_services.cancel_assignment(
        assignment=assignment, reason="Merged into parent account", by=manager
    )

    assignment.refresh_from_db()
    assert (assignment.status, assignment.outcome) == ("cancelled", "cancelled")
    assert assignment.reason == "Merged into parent account"
    assert assignment.closed_at is not None
    assert selectors.tasks_of(csm).count() == 0


# --- Tasks ------------------------------------------------------------------------


def test_completing_every_task_closes_the_assignment_as_done(customer, csm):
    assignment = playbook_services.assign_playbook(
        playbook=Playbook.objects.get(name="Expand"), customer=customer
    )
    tasks = list(assignment.tasks.order_by("position"))

    playbook_services.complete_task(task=tasks[0], user=csm, note="Two products fit")
    assignment.refresh_from_db()
    assert assignment.status == "open"

    for task in tasks[1:]:
        playbook_services.complete_task(task=task, user=csm)

    assignment.refresh_from_db()
    assert (assignment.status, assignment.outcome) == ("done", "completed")
    first = Task.objects.get(pk=tasks[0].pk)
    assert (first.note, first.done_by) == ("Two products fit", csm)
    with pytest.raises(ValueError):
        playbook_services.complete_task(task=tasks[0], user=csm)


def test_completing_an_interaction_step_logs_it_and_rescores(
    model, csm, django_capture_on_commit_callbacks
):
    customer = customer_with_inputs(1, jobs.today(), variant=0)
    customer.owner = csm
    customer.save()
    assignment = playbook_services.assign_playbook(
        playbook=Playbook.objects.get(name="Triage"), customer=customer
    )
    call = assignment.tasks.get(position=1)
    root_cause = assignment.tasks.get(position=2)
    assert not ScoreSnapshot.objects.filter(customer=customer).exists()

    with django_capture_on_commit_callbacks(execute=True):
        playbook_services.complete_task(
            task=call, user=csm, note="Sponsor is unhappy with support", sentiment=-1
        )

    interaction = Interaction.objects.get(customer=customer, csm=csm)
    assert interaction.kind == "call"
    assert interaction.sentiment == -1
    assert interaction.summary == (
        "Call the executive sponsor: Sponsor is unhappy with support"
    )
    assert Task.objects.get(pk=call.pk).interaction == interaction
    snap = ScoreSnapshot.objects.get(customer=customer, as_of=jobs.today())
    assert "interaction_sentiment" in str(snap.breakdown)

    # A step that logs nothing leaves the interactions alone.
    with django_capture_on_commit_callbacks(execute=True):
        playbook_services.complete_task(task=root_cause, user=csm, note="Support")
    assert Interaction.objects.filter(customer=customer, csm=csm).count() == 1


def test_my_tasks_lists_overdue_first(customer, csm, other_csm):
    today = jobs.today()
    late = playbook_services.assign_playbook(
        playbook=Playbook.objects.get(name="Triage"),
        customer=customer,
        opened_on=today - timedelta(days=6),
    )
    fresh = playbook_services.assign_playbook(
        playbook=Playbook.objects.get(name="Advocacy"), customer=customer
    )
    playbook_services.assign_playbook(
        playbook=Playbook.objects.get(name="Expand"), customer=customer, owner=other_csm
    )

    tasks = list(selectors.tasks_of(csm))

    assert [(t.assignment_id, t.position, t.is_overdue) for t in tasks] == [
        (late.pk, 1, True),  # due 4 days ago
        (late.pk, 2, True),  # due yesterday
        (late.pk, 3, False),  # due tomorrow
        (fresh.pk, 1, False),
        (fresh.pk, 2, False),
        (fresh.pk, 3, False),
    ]


# --- Template tags ---------------------------------------------------------------


def test_open_task_counts_is_one_query(customer, model, django_assert_num_queries):
    other = Customer.objects.create(name="Other", external_id="OTHER")
    idle = Customer.objects.create(name="Idle", external_id="IDLE")
    playbook_services.assign_playbook(
        playbook=Playbook.objects.get(name="Triage"), customer=customer
    )
    done = playbook_services.assign_playbook(
        playbook=Playbook.objects.get(name="Advocacy"), customer=other
    )
    Task.objects.filter(assignment=done, position=1).update(
        done_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    customers = [customer, other, idle]

    with django_assert_num_queries(1):
        html = Template(
            "{% load playbook_tags %}{% open_task_counts customers as counts %}"
            "{% for c in customers %}{{ c.name }}={{ counts|lookup:c.pk }};"
            "{% endfor %}"
        ).render(Context({"customers": customers}))

    assert html == "Acme=3;Other=2;Idle=0;"


def test_overdue_task_counts_by_owner(customer, csm, other_csm):
    today = jobs.today()
    triage = Playbook.objects.get(name="Triage")
    playbook_services.assign_playbook(
        playbook=triage, customer=customer, opened_on=today - timedelta(days=6)
    )
    other = Customer.objects.create(name="B", external_id="B", owner=other_csm)
    playbook_services.assign_playbook(
        playbook=triage, customer=other, opened_on=today - timedelta(days=3)
    )

    counts = selectors.overdue_task_counts_by_owner()

    assert counts == {csm.pk: 2, other_csm.pk: 1}


@pytest.mark.parametrize(
    "who, can_complete", [("csm", True), ("other_csm", False), ("manager", True)]
)
def test_customer_tasks_offers_completion_to_who_may_complete(
    request, customer, who, can_complete
):
    playbook_services.assign_playbook(
        playbook=Playbook.objects.get(name="Advocacy"), customer=customer
    )
    http_request = RequestFactory().get("/customers/1/")
    http_request.user = request.getfixturevalue(who)

    html = Template("{% load playbook_tags %}{% customer_tasks customer %}").render(
        Context({"customer": customer, "request": http_request, "csrf_token": "tok"})
    )

    assert "Ask for a reference" in html
    assert ('name="next" value="/customers/1/"' in html) is can_complete
    assert ("csrfmiddlewaretoken" in html) is can_complete


# --- Effectiveness ---------------------------------------------------------------


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def test_effectiveness_on_a_history_worked_out_by_hand(model):
    today = date(2026, 6, 30)
    triage = Playbook.objects.get(name="Triage")
    recovery = Playbook.objects.get(name="Recovery plan")
    advocacy = Playbook.objects.get(name="Advocacy")
    c = {
        name: Customer.objects.create(name=name, external_id=name) for name in "ABCDEF"
    }

    def assignment(playbook, name, opened, status, closed=None, band=None):
        Assignment.objects.create(
            playbook=playbook,
            customer=c[name],
            band=band or playbook.band,
            opened_on=opened,
            due_on=opened + timedelta(days=7),
            status=status,
            closed_at=noon(closed) if closed else None,
        )

    # Triage, opened in very unhealthy:
    # a1 A: done in 4 days; unhealthy 45 days later: recovered.
    assignment(triage, "A", date(2026, 1, 1), "done", date(2026, 1, 5))
    snapshot(c["A"], model, date(2026, 2, 15), "unhealthy")
    # a2 B: done in 10 days; neutral only on day 95: not recovered, judged.
    assignment(triage, "B", date(2026, 1, 10), "done", date(2026, 1, 20))
    snapshot(c["B"], model, date(2026, 3, 1), "very_unhealthy")
    snapshot(c["B"], model, date(2026, 4, 15), "neutral")
    # a3 C: cancelled: ends, but its recovery does not count.
    assignment(triage, "C", date(2026, 2, 1), "cancelled", date(2026, 2, 2))
    snapshot(c["C"], model, date(2026, 2, 10), "healthy")
    # a4 D: open, still very unhealthy, window not over: not judged yet.
    assignment(triage, "D", date(2026, 6, 1), "open")
    snapshot(c["D"], model, date(2026, 6, 20), "very_unhealthy")
    # a5 E: obsolete on recovery: recovered, neither completed nor ended.
    assignment(triage, "E", date(2026, 3, 1), "obsolete", date(2026, 3, 5))
    snapshot(c["E"], model, date(2026, 3, 5), "neutral")
    # a6 A again: done in 7 days; better on its opening day does not count,
    # on day 90 exactly it does: recovered.
    assignment(triage, "A", date(2026, 3, 1), "done", date(2026, 3, 8))
    snapshot(c["A"], model, date(2026, 3, 1), "unhealthy")
    snapshot(c["A"], model, date(2026, 5, 30), "neutral")
    # a7 F: done in 1 day; never scored again: not recovered, judged.
    assignment(triage, "F", date(2026, 1, 1), "done", date(2026, 1, 2))
    # Recovery plan, opened in unhealthy; B reached neutral on 15 April.
    assignment(recovery, "B", date(2026, 4, 1), "open")
    # Advocacy: there is no better band than very healthy.
    assignment(advocacy, "F", date(2026, 4, 1), "open")

    rows = {r.playbook.name: r for r in selectors.effectiveness(today=today)}

    t = rows["Triage"]
    assert t.assignments == 7
    assert (t.completed, t.ended, t.completion_rate) == (4, 5, 0.8)
    assert sorted(t.days_to_complete) == [1, 4, 7, 10]
    assert t.median_days_to_complete == 5.5
    assert (t.recovered, t.judged, t.recovery_rate) == (3, 5, 0.6)

    r = rows["Recovery plan"]
    assert (r.assignments, r.completion_rate, r.median_days_to_complete) == (
        1,
        None,
        None,
    )
    assert (r.recovered, r.judged, r.recovery_rate) == (1, 1, 1.0)

    a = rows["Advocacy"]
    assert (a.assignments, a.recovery_rate) == (1, None)

    e = rows["Expand"]
    assert (e.assignments, e.completion_rate, e.recovery_rate) == (0, None, None)
    assert list(rows) == [
        "Triage",
        "Recovery plan",
        "Unlock the untapped",
        "Expand",
        "Advocacy",
    ]


def test_effectiveness_costs_two_queries(model, django_assert_num_queries):
    customer = Customer.objects.create(name="A", external_id="A")
    playbook_services.assign_playbook(
        playbook=Playbook.objects.get(name="Triage"), customer=customer
    )

    with django_assert_num_queries(2):
        selectors.effectiveness()


# --- Demo -------------------------------------------------------------------------


def test_after_the_demo_every_csm_has_work_matching_their_customers_bands(db):
    as_of = date(2026, 3, 31)
    out = StringIO()

    call_command("build_demo", "--customers=24", f"--as-of={as_of}", stdout=out)

    customers = Customer.objects.filter(
        external_id__startswith="DEMO-", churned_on__isnull=True
    )
    csms = {c.owner for c in customers if c.owner}
    assert len(csms) >= 2
    for owner in csms:
        assert selectors.tasks_of(owner).exists(), owner
    for customer in customers:
        band = selectors.current_band(customer.pk)
        expected = [] if band in (None, "unscored") else [band]
        bands = list(
            Assignment.objects.filter(customer=customer, status="open").values_list(
                "playbook__band", flat=True
            )
        )
        assert bands == expected, customer
    # Some of the work is overdue, opened when the customer entered its band.
    assert selectors.overdue_task_counts_by_owner(today=as_of)
    assert "playbooks.receivers: " in out.getvalue()
