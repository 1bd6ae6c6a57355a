"""Who may open what, so far: the customer list and the Django admin."""

from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from health.models import Customer, JobRun, ScoreModel, ScoreSnapshot


def test_customer_list_needs_a_login(client, db):
    response = client.get(reverse("customer-list"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_customer_list_refuses_a_user_without_a_role(client, outsider):
    client.force_login(outsider)

    assert client.get(reverse("customer-list")).status_code == 403


@pytest.mark.parametrize("who", ["csm", "manager", "admin_user"])
def test_every_role_sees_customers_least_healthy_first(client, db, request, who):
    user = request.getfixturevalue(who)
    model = ScoreModel.objects.get(status="active")
    for name, score, band in [
        ("Fine", 72.5, "healthy"),
        ("Sick", 12.0, "very_unhealthy"),
    ]:
        customer = Customer.objects.create(name=name, external_id=name)
        ScoreSnapshot.objects.create(
            customer=customer,
            model=model,
            as_of=date(2026, 1, 31),
            score=score,
            band=band,
            coverage=1,
        )
    client.force_login(user)

    response = client.get(reverse("customer-list"))

    assert response.status_code == 200
    names = [c.name for c in response.context["page"]]
    assert names == ["Sick", "Fine"]
    assert b"Very unhealthy" in response.content


def test_customer_list_filters_by_band(client, csm):
    model = ScoreModel.objects.get(status="active")
    for name, band in [("A", "healthy"), ("B", "neutral")]:
        ScoreSnapshot.objects.create(
            customer=Customer.objects.create(name=name, external_id=name),
            model=model,
            as_of=date(2026, 1, 31),
            score=50,
            band=band,
            coverage=1,
        )
    client.force_login(csm)

    response = client.get(reverse("customer-list"), {"band": "neutral"})

    assert [c.name for c in response.context["page"]] == ["B"]


def test_customer_list_refuses_post(client, csm):
    client.force_login(csm)

    assert client.post(reverse("customer-list")).status_code == 405


@pytest.mark.parametrize("who", ["csm", "manager", "outsider"])
def test_only_admins_reach_the_django_admin(client, db, request, who):
    user = request.getfixturevalue(who)
    user.is_staff = True  # even staff status alone is not enough
    user.save()
    client.force_login(user)

    response = client.get(reverse("admin:index"))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_admin_opens_the_admin_pages(client, admin_user):
    client.force_login(admin_user)

    for name in [
        "admin:index",
        "admin:health_customer_changelist",
        "admin:health_scoremodel_changelist",
        "admin:health_scoresnapshot_changelist",
        "admin:health_jobrun_changelist",
    ]:
        assert client.get(reverse(name)).status_code == 200, name


def test_job_runs_page_says_when_the_nightly_run_last_succeeded(client, admin_user):
    finished = timezone.now() - timedelta(hours=5)
    JobRun.objects.create(
        kind=JobRun.Kind.NIGHTLY,
        status=JobRun.Status.SUCCEEDED,
        total=10,
        done=10,
        finished_at=finished,
    )
    client.force_login(admin_user)

    response = client.get(reverse("admin:health_jobrun_changelist"))

    expected = f"Nightly run last succeeded {finished:%Y-%m-%d %H:%M} UTC"
    assert expected in response.content.decode()


def test_active_model_is_read_only_in_the_admin(client, admin_user):
    model = ScoreModel.objects.get(status="active")
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:health_scoremodel_change", args=[model.pk]),
        {"name": "Changed", "version": 1, "status": "active", "min_coverage": 0.1},
    )

    assert response.status_code == 403
    model.refresh_from_db()
    assert (model.name, model.min_coverage) == ("Default", 0.5)


@pytest.mark.parametrize("owner", ["²", "99999999999999999999999", "abc", "-1"])
def test_odd_owner_filters_are_ignored_not_errors(client, csm, owner):
    client.force_login(csm)

    assert client.get(reverse("customer-list"), {"owner": owner}).status_code == 200
    assert client.get(reverse("playbooks:board"), {"owner": owner}).status_code == 200


def test_a_nul_character_in_a_query_is_a_bad_request(client, csm):
    client.force_login(csm)

    response = client.get(reverse("customer-list"), {"q": "a\x00b"})

    assert response.status_code == 400


def test_a_user_without_a_role_is_told_why_and_can_log_out(client, outsider):
    client.force_login(outsider)

    response = client.get(reverse("customer-list"), follow=True)

    assert response.status_code == 403
    page = response.content.decode()
    assert "You have no role in the workbench." in page
    assert reverse("logout") in page


def test_the_admin_refuses_a_customer_an_import_would_refuse(client, admin_user):
    client.force_login(admin_user)
    customer = Customer.objects.create(
        name="Acme", external_id="ACME", customer_since=date(2027, 1, 1), arr=100
    )
    url = reverse("admin:health_customer_change", args=[customer.pk])
    form = {
        "name": "Acme",
        "external_id": "ACME",
        "support_id": "",
        "analytics_id": "",
        "segment": "",
        "arr": "-5",
        "owner": "",
        "customer_since": "2027-01-01",
        "renewal_date": "2019-01-01",
        "churned_on": "",
    }

    response = client.post(url, form)

    assert response.status_code == 200
    html = response.content.decode()
    assert "ARR cannot be negative." in html
    assert "2019-01-01 is before customer_since." in html
    customer.refresh_from_db()
    assert (customer.arr, customer.renewal_date) == (100, None)

    form.update(arr="250", renewal_date="2027-06-30")
    response = client.post(url, form)

    assert response.status_code == 302
    customer.refresh_from_db()
    assert (customer.arr, customer.renewal_date) == (250, date(2027, 6, 30))
