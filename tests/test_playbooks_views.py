"""Playbook pages through the full stack: who may open and change what, for
every view, role and method, and what the pages do."""

from datetime import date, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from health import jobs
from health.models import Customer, ScoreModel, ScoreSnapshot
from playbooks import services
from playbooks.models import Assignment, Playbook, Task

ROLES = ["csm", "other_csm", "manager", "admin_user", "anonymous", "outsider"]


@pytest.fixture
def customer(csm) -> Customer:
    customer = Customer.objects.create(
        name="Acme", external_id="ACME", segment="SMB", owner=csm
    )
    ScoreSnapshot.objects.create(
        customer=customer,
        model=ScoreModel.objects.get(status="active", segment=""),
        as_of=date(2026, 3, 1),
        score=10,
        band="very_unhealthy",
        coverage=1,
    )
    return customer


@pytest.fixture
def assignment(customer) -> Assignment:
    return services.assign_playbook(
        playbook=Playbook.objects.get(name="Triage"), customer=customer
    )


def state() -> list:
    """Everything a refused request must leave as it was."""
    return [
        list(Assignment.objects.order_by("pk").values_list("status", "owner_id")),
        list(Task.objects.order_by("pk").values_list("done_at", "note")),
    ]


def login(client, request, who):
    if who != "anonymous":
        client.force_login(request.getfixturevalue(who))


# (url name, uses the assignment/task pk, method, POST data maker, expected
# status per role in ROLES order). 302 for anonymous is the login redirect.
def post_data(kind, assignment, other_csm):
    return {
        "assign": {
            "playbook": Playbook.objects.get(name="Advocacy").pk,
            "customer": assignment.customer_id,
        },
        "assign-bulk": {
            "playbook": Playbook.objects.get(name="Advocacy").pk,
            "segment": "SMB",
        },
        "assignment-reassign": {"owner": other_csm.pk},
        "assignment-cancel": {"reason": "Duplicate account"},
        "task-complete": {"note": "Spoke to the sponsor", "sentiment": "0"},
    }.get(kind, {})


MATRIX = [
    ("my-tasks", None, "get", [200, 200, 200, 200, 302, 403]),
    ("my-tasks", None, "post", [405] * 6),
    ("board", None, "get", [200, 200, 200, 200, 302, 403]),
    ("board", None, "post", [405] * 6),
    ("assign", None, "get", [403, 403, 200, 200, 302, 403]),
    ("assign", None, "post", [403, 403, 302, 302, 302, 403]),
    ("assign-bulk", None, "get", [405] * 6),
    ("assign-bulk", None, "post", [403, 403, 302, 302, 302, 403]),
    ("assignment", "assignment", "get", [200, 404, 200, 200, 302, 403]),
    ("assignment", "assignment", "post", [405] * 6),
    ("assignment-reassign", "assignment", "get", [405] * 6),
    ("assignment-reassign", "assignment", "post", [403, 403, 302, 302, 302, 403]),
    ("assignment-cancel", "assignment", "get", [405] * 6),
    ("assignment-cancel", "assignment", "post", [403, 403, 302, 302, 302, 403]),
    ("task-complete", "task", "get", [405] * 6),
    ("task-complete", "task", "post", [302, 404, 302, 302, 302, 403]),
    ("effectiveness", None, "get", [403, 403, 200, 200, 302, 403]),
    ("effectiveness", None, "post", [405] * 6),
]


@pytest.mark.parametrize(
    "name, target, method, expected, who",
    [
        pytest.param(n, t, m, e[i], who, id=f"{n}-{m}-{who}")
        for n, t, m, e in MATRIX
        for i, who in enumerate(ROLES)
    ],
)
def test_permissions(
    client, request, assignment, other_csm, name, target, method, expected, who
):
    kwargs = {}
    if target == "assignment":
        kwargs = {"pk": assignment.pk}
    elif target == "task":
        kwargs = {"pk": assignment.tasks.get(position=1).pk}
    url = reverse(f"playbooks:{name}", kwargs=kwargs)
    login(client, request, who)
    before = state()
    assignments_before = Assignment.objects.count()

    if method == "get":
        response = client.get(url)
    else:
        response = client.post(url, post_data(name, assignment, other_csm))

    assert response.status_code == expected
    if who == "anonymous" and expected == 302:
        assert response["Location"].startswith(reverse("login"))
    if method == "get" or expected != 302 or who == "anonymous":
        assert state() == before
        assert Assignment.objects.count() == assignments_before


def test_forms_need_a_csrf_token(assignment, csm):
    client = Client(enforce_csrf_checks=True)
    client.force_login(csm)
    task = assignment.tasks.get(position=1)
    page = client.get(reverse("playbooks:my-tasks"))
    assert b"csrfmiddlewaretoken" in page.content

    response = client.post(reverse("playbooks:task-complete", args=[task.pk]))

    assert response.status_code == 403
    assert Task.objects.get(pk=task.pk).done_at is None


# --- What the pages do ------------------------------------------------------------


def test_my_tasks_page_shows_overdue_first(client, customer, csm):
    services.assign_playbook(
        playbook=Playbook.objects.get(name="Advocacy"), customer=customer
    )
    services.assign_playbook(
        playbook=Playbook.objects.get(name="Triage"),
        customer=customer,
        opened_on=jobs.today() - timedelta(days=3),
    )
    client.force_login(csm)

    response = client.get(reverse("playbooks:my-tasks"))

    tasks = list(response.context["tasks"])
    assert tasks[0].title == "Call the executive sponsor" and tasks[0].is_overdue
    assert [t.is_overdue for t in tasks] == [True] + [False] * 5
    assert b"overdue" in response.content


def test_completing_a_task_from_a_page_returns_to_it(client, assignment, csm):
    task = assignment.tasks.get(position=2)
    client.force_login(csm)

    response = client.post(
        reverse("playbooks:task-complete", args=[task.pk]),
        {"note": "Support backlog", "next": "/customers/1/"},
    )

    assert response.status_code == 302 and response["Location"] == "/customers/1/"
    task.refresh_from_db()
    assert (task.note, task.done_by) == ("Support backlog", csm)


def test_completing_ignores_a_next_on_another_host(client, assignment, csm):
    task = assignment.tasks.get(position=2)
    client.force_login(csm)

    response = client.post(
        reverse("playbooks:task-complete", args=[task.pk]),
        {"next": "https://evil.example/"},
    )

    assert response["Location"] == reverse("playbooks:my-tasks")


def test_a_done_task_cannot_be_completed_twice(client, assignment, csm):
    task = assignment.tasks.get(position=2)
    client.force_login(csm)
    url = reverse("playbooks:task-complete", args=[task.pk])
    client.post(url, {"note": "first"})

    response = client.post(url, {"note": "second"})

    assert response.status_code == 404
    assert Task.objects.get(pk=task.pk).note == "first"


def test_the_customers_csm_may_complete_work_assigned_to_someone_else(
    client, customer, csm, other_csm
):
    assignment = services.assign_playbook(
        playbook=Playbook.objects.get(name="Triage"), customer=customer, owner=other_csm
    )
    task = assignment.tasks.get(position=2)
    client.force_login(csm)

    response = client.post(reverse("playbooks:task-complete", args=[task.pk]))

    assert response.status_code == 302
    assert Task.objects.get(pk=task.pk).done_by == csm


def test_manager_assigns_one_customer(client, customer, manager, other_csm):
    client.force_login(manager)
    playbook = Playbook.objects.get(name="Expand")

    response = client.post(
        reverse("playbooks:assign"),
        {"playbook": playbook.pk, "customer": customer.pk, "owner": other_csm.pk},
    )

    assignment = Assignment.objects.get(playbook=playbook)
    assert response["Location"] == reverse("playbooks:assignment", args=[assignment.pk])
    assert (assignment.owner, assignment.assigned_by) == (other_csm, manager)
    assert assignment.band == "very_unhealthy"

    again = client.post(
        reverse("playbooks:assign"),
        {"playbook": playbook.pk, "customer": customer.pk},
        follow=True,
    )
    assert b"already has Expand open" in again.content
    assert Assignment.objects.filter(playbook=playbook).count() == 1


def test_an_invalid_assignment_is_refused_with_400(client, manager):
    client.force_login(manager)

    response = client.post(reverse("playbooks:assign"), {"playbook": "999"})

    assert response.status_code == 400
    assert not Assignment.objects.exists()


def test_manager_assigns_in_bulk_by_band_segment_and_owner(
    client, customer, manager, csm, other_csm
):
    model = ScoreModel.objects.get(status="active", segment="")
    for name, owner in [("Beta", csm), ("Gamma", other_csm)]:
        c = Customer.objects.create(
            name=name, external_id=name, segment="SMB", owner=owner
        )
        ScoreSnapshot.objects.create(
            customer=c,
            model=model,
            as_of=date(2026, 3, 1),
            score=10,
            band="very_unhealthy",
            coverage=1,
        )
    client.force_login(manager)
    playbook = Playbook.objects.get(name="Recovery plan")

    response = client.post(
        reverse("playbooks:assign-bulk"),
        {
            "playbook": playbook.pk,
            "band": "very_unhealthy",
            "segment": "SMB",
            "owner": csm.pk,
        },
        follow=True,
    )

    assert sorted(
        Assignment.objects.filter(playbook=playbook).values_list(
            "customer__name", flat=True
        )
    ) == ["Acme", "Beta"]
    assert b"assigned to 2 customers; 0 already had it open" in response.content


def test_bulk_assignment_needs_a_filter(client, customer, manager):
    client.force_login(manager)

    response = client.post(
        reverse("playbooks:assign-bulk"),
        {"playbook": Playbook.objects.get(name="Expand").pk},
    )

    assert response.status_code == 400
    assert b"at least one filter" in response.content
    assert not Assignment.objects.exists()


def test_manager_reassigns_and_cancels(client, assignment, manager, other_csm):
    client.force_login(manager)

    client.post(
        reverse("playbooks:assignment-reassign", args=[assignment.pk]),
        {"owner": other_csm.pk},
    )
    assignment.refresh_from_db()
    assert assignment.owner == other_csm

    refused = client.post(
        reverse("playbooks:assignment-cancel", args=[assignment.pk]), {"reason": ""}
    )
    assignment.refresh_from_db()
    assert refused.status_code == 302 and assignment.status == "open"

    client.post(
        reverse("playbooks:assignment-cancel", args=[assignment.pk]),
        {"reason": "Customer asked for a pause"},
    )
    assignment.refresh_from_db()
    assert (assignment.status, assignment.reason) == (
        "cancelled",
        "Customer asked for a pause",
    )

    closed = client.post(
        reverse("playbooks:assignment-reassign", args=[assignment.pk]),
        {"owner": other_csm.pk},
    )
    assert closed.status_code == 404


def test_board_filters_by_status_owner_and_overdue(
    client, customer, manager, csm, other_csm
):
    today = jobs.today()
    late = services.assign_playbook(
        playbook=Playbook.objects.get(name="Triage"),
        customer=customer,
        opened_on=today - timedelta(days=10),
    )
    on_time = services.assign_playbook(
        playbook=Playbook.objects.get(name="Advocacy"),
        customer=customer,
        owner=other_csm,
    )
    gone = services.assign_playbook(
        playbook=Playbook.objects.get(name="Expand"), customer=customer
    )
    services.cancel_assignment(assignment=gone, reason="No", by=manager)
    client.force_login(manager)

    def board(**params):
        response = client.get(reverse("playbooks:board"), params)
        assert response.status_code == 200
        return [a.pk for a in response.context["page"]]

    assert board() == [late.pk, on_time.pk]
    assert board(status="all") == [late.pk, on_time.pk, gone.pk]
    assert board(status="cancelled") == [gone.pk]
    assert board(owner=other_csm.pk) == [on_time.pk]
    assert board(overdue="1") == [late.pk]
    page = client.get(reverse("playbooks:board"))
    row = page.context["page"][0]
    assert (row.open_tasks, row.overdue_tasks) == (3, 3)


def test_a_csm_sees_only_their_own_work_on_the_board(client, customer, csm, other_csm):
    mine = services.assign_playbook(
        playbook=Playbook.objects.get(name="Triage"), customer=customer
    )
    theirs = Customer.objects.create(name="Z", external_id="Z", owner=other_csm)
    services.assign_playbook(
        playbook=Playbook.objects.get(name="Triage"), customer=theirs
    )
    client.force_login(csm)

    response = client.get(reverse("playbooks:board"))

    assert [a.pk for a in response.context["page"]] == [mine.pk]


def test_effectiveness_page_shows_every_playbook(client, assignment, manager):
    client.force_login(manager)

    response = client.get(reverse("playbooks:effectiveness"))

    assert [r.playbook.name for r in response.context["rows"]][0] == "Triage"
    assert b"Unlock the untapped" in response.content
