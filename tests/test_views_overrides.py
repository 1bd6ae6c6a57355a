"""Band overrides from the customer page: who may set and end one, what the
page and the lists show, and that a refused post writes nothing."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from health import tuning
from health.jobs import today
from health.models import Customer, Override, ScoreModel, ScoreSnapshot
from tests.test_views import band_of

REASON = "Exec sponsor confirmed the renewal on the call"


def account(name: str = "Acme", *, owner=None, score: float = 50.0) -> Customer:
    """A customer scored today (50 is neutral) and 30 days ago."""
    model = ScoreModel.objects.get(status="active", segment="")
    customer = Customer.objects.create(name=name, external_id=name, owner=owner)
    for days in (0, 30):
        ScoreSnapshot.objects.create(
            customer=customer,
            model=model,
            as_of=today() - timedelta(days=days),
            score=score,
            band=band_of(score),
            coverage=1,
        )
    return customer


def todays_snapshot(customer: Customer) -> ScoreSnapshot:
    return ScoreSnapshot.objects.get(customer=customer, as_of=today())


def override_url(customer: Customer) -> str:
    return reverse("customer-override", args=[customer.pk])


def end_url(override: Override) -> str:
    return reverse("customer-end-override", args=[override.customer_id, override.pk])


def page(client, customer: Customer):
    return client.get(reverse("customer-detail", args=[customer.pk]))


# --- Setting an override -----------------------------------------------------


def test_owner_overrides_the_band_through_the_page(client, csm):
    customer = account(owner=csm)
    client.force_login(csm)
    form = page(client, customer).content.decode()
    assert f'action="{override_url(customer)}"' in form
    assert 'name="days" value="30"' in form

    response = client.post(
        override_url(customer), {"band": "healthy", "reason": REASON, "days": "30"}
    )

    assert response.status_code == 302
    assert response["Location"].endswith("#override")
    override = Override.objects.get(customer=customer)
    assert (override.band, override.computed_band) == ("healthy", "neutral")
    assert (override.created_by, override.reason) == (csm, REASON)
    assert override.starts_on == today()
    assert override.expires_on == today() + timedelta(days=30)
    snapshot = todays_snapshot(customer)
    assert (snapshot.band, snapshot.overridden_band) == ("neutral", "healthy")
    assert snapshot.override == override
    assert snapshot.effective_band == "healthy"
    shown = client.get(response["Location"]).content.decode()
    assert "Band overridden to Healthy" in shown


def test_another_csm_is_refused_and_nothing_is_written(client, csm, other_csm):
    customer = account(owner=csm)
    client.force_login(other_csm)
    assert (
        f'action="{override_url(customer)}"'
        not in page(client, customer).content.decode()
    )

    response = client.post(
        override_url(customer), {"band": "healthy", "reason": REASON, "days": "30"}
    )

    assert response.status_code == 403
    assert Override.objects.count() == 0
    assert todays_snapshot(customer).overridden_band == ""


def test_a_manager_may_override_any_customer_for_90_days(client, manager, csm):
    customer = account(owner=csm)
    client.force_login(manager)

    response = client.post(
        override_url(customer),
        {"band": "very_unhealthy", "reason": "Champion left", "days": "90"},
    )

    assert response.status_code == 302
    override = Override.objects.get(customer=customer)
    assert (override.band, override.created_by) == ("very_unhealthy", manager)
    assert override.expires_on == today() + timedelta(days=90)


def test_91_days_are_refused_with_the_error_beside_the_field(client, csm):
    customer = account(owner=csm)
    client.force_login(csm)

    response = client.post(
        override_url(customer), {"band": "healthy", "reason": REASON, "days": "91"}
    )

    assert response.status_code == 200
    assert Override.objects.count() == 0
    assert todays_snapshot(customer).overridden_band == ""
    form = response.context["override_form"]
    assert form.errors == {"days": ["An override lasts from 1 to 90 days."]}
    html = response.content.decode()
    assert 'id="id_days_errors"' in html
    assert "An override lasts from 1 to 90 days." in html
    # What was typed comes back, so that only the days need fixing.
    assert REASON in html


def test_band_and_reason_are_required(client, csm):
    customer = account(owner=csm)
    client.force_login(csm)

    response = client.post(
        override_url(customer), {"band": "unscored", "reason": "  ", "days": "30"}
    )

    assert response.status_code == 200
    assert Override.objects.count() == 0
    assert set(response.context["override_form"].errors) == {"band", "reason"}
    html = response.content.decode()
    assert 'id="id_band_errors"' in html
    assert "Give a reason for the override." in html


def test_a_new_override_replaces_the_one_in_effect(client, csm, manager):
    customer = account(owner=csm)
    first = tuning.override_band(
        customer=customer, band="healthy", reason="Good QBR", by=csm
    )
    client.force_login(manager)

    client.post(
        override_url(customer),
        {"band": "unhealthy", "reason": "Budget cut announced", "days": "14"},
    )

    first.refresh_from_db()
    assert (first.ended_on, first.ended_by) == (today(), manager)
    assert tuning.current_override(customer.pk).band == "unhealthy"
    assert Override.objects.filter(customer=customer).count() == 2


def test_override_forms_need_their_csrf_token(csm):
    customer = account(owner=csm)
    override = tuning.override_band(
        customer=customer, band="healthy", reason=REASON, by=csm
    )
    client = Client(enforce_csrf_checks=True)
    client.force_login(csm)

    refused = [
        client.post(
            override_url(customer), {"band": "unhealthy", "reason": "x", "days": "5"}
        ),
        client.post(end_url(override)),
    ]

    assert [r.status_code for r in refused] == [403, 403]
    assert list(Override.objects.values_list("band", "ended_on")) == [("healthy", None)]


# --- Ending an override ------------------------------------------------------


def test_owner_ends_an_override(client, csm):
    customer = account(owner=csm)
    override = tuning.override_band(
        customer=customer, band="healthy", reason=REASON, by=csm
    )
    client.force_login(csm)
    assert f'action="{end_url(override)}"' in page(client, customer).content.decode()

    response = client.post(end_url(override))

    assert response.status_code == 302
    override.refresh_from_db()
    assert (override.ended_on, override.ended_by) == (today(), csm)
    assert tuning.current_override(customer.pk) is None
    snapshot = todays_snapshot(customer)
    assert (snapshot.overridden_band, snapshot.override) == ("", None)
    html = client.get(response["Location"]).content.decode()
    assert "Override ended" in html
    assert "No override: the computed band applies." in html
    # Kept for audit, and listed as ended.
    assert f"ended {today():%Y-%m-%d}" in html


def test_another_csm_may_not_end_an_override(client, csm, other_csm):
    customer = account(owner=csm)
    override = tuning.override_band(
        customer=customer, band="healthy", reason=REASON, by=csm
    )
    client.force_login(other_csm)
    assert (
        f'action="{end_url(override)}"' not in page(client, customer).content.decode()
    )

    response = client.post(end_url(override))

    assert response.status_code == 403
    override.refresh_from_db()
    assert override.ended_on is None
    assert todays_snapshot(customer).overridden_band == "healthy"


def test_ending_an_override_no_longer_in_effect_changes_nothing(client, csm, manager):
    customer = account(owner=csm)
    first = tuning.override_band(
        customer=customer, band="healthy", reason="Good QBR", by=csm
    )
    second = tuning.override_band(
        customer=customer, band="unhealthy", reason="Budget cut", by=manager
    )
    client.force_login(csm)

    # A page opened before the second override still offers to end the first.
    response = client.post(end_url(first), follow=True)

    assert response.status_code == 200
    assert "no longer in effect" in response.content.decode()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.ended_by == manager
    assert second.ended_on is None
    assert todays_snapshot(customer).overridden_band == "unhealthy"


# --- What the pages show -----------------------------------------------------


def test_customer_page_shows_both_bands_and_the_override(client, csm, manager):
    customer = account(owner=csm, score=50.0)
    tuning.override_band(
        customer=customer, band="healthy", reason=REASON, by=manager, days=14
    )
    client.force_login(csm)

    response = page(client, customer)

    html = response.content.decode()
    assert response.context["override"].band == "healthy"
    computed = html.split('data-testid="computed-band"', 1)[1][:200]
    overridden = html.split('data-testid="overridden-band"', 1)[1][:200]
    assert "Neutral" in computed
    assert "Healthy" in overridden
    until = f"{today() + timedelta(days=14):%Y-%m-%d}"
    assert f"by Morgan Lee until {until}" in html
    assert REASON in html


def test_customer_page_without_an_override_offers_the_form_only(client, csm):
    customer = account(owner=csm)
    client.force_login(csm)

    html = page(client, customer).content.decode()

    assert 'data-testid="overridden-band"' not in html
    assert "No override: the computed band applies." in html
    assert "End override" not in html


def test_an_expired_override_lapses_from_the_page(client, csm):
    customer = account(owner=csm)
    tuning.override_band(
        customer=customer,
        band="healthy",
        reason=REASON,
        by=csm,
        days=10,
        today=today() - timedelta(days=10),
    )
    client.force_login(csm)

    response = page(client, customer)

    assert response.context["override"] is None
    assert 'data-testid="overridden-band"' not in response.content.decode()
    assert len(response.context["overrides"]) == 1  # still listed for audit


@pytest.mark.parametrize("url_name", ["my-book", "customer-list"])
def test_list_pages_mark_the_overridden_band(client, csm, url_name):
    overridden = account("Overridden", owner=csm)
    account("Computed", owner=csm)
    tuning.override_band(customer=overridden, band="healthy", reason=REASON, by=csm)
    client.force_login(csm)

    response = client.get(reverse(url_name))

    rows = {c.name: c for c in response.context["page"]}
    assert (rows["Overridden"].band, rows["Overridden"].overridden_band) == (
        "neutral",
        "healthy",
    )
    assert rows["Computed"].overridden_band is None
    html = response.content.decode()
    assert html.count("overridden; computed Neutral") == 1


def test_dashboard_movers_mark_the_overridden_band(client, csm, manager):
    falling = account("Falling", owner=csm)
    # 30 days ago 50.0, today 35.0: down 15 points, now unhealthy.
    ScoreSnapshot.objects.filter(customer=falling, as_of=today()).update(
        score=35.0, band="unhealthy"
    )
    ScoreSnapshot.objects.get(customer=falling, as_of=today()).save()
    tuning.override_band(customer=falling, band="neutral", reason=REASON, by=csm)
    client.force_login(manager)

    response = client.get(reverse("dashboard"))

    [mover] = response.context["down"]
    assert (mover.name, mover.band, mover.overridden_band) == (
        "Falling",
        "unhealthy",
        "neutral",
    )
    assert mover.delta == pytest.approx(-15.0)


@pytest.mark.parametrize("url_name", ["my-book", "customer-list"])
def test_overrides_cost_the_list_pages_no_query(client, csm, url_name):
    customers = [account(f"Customer {n:02d}", owner=csm) for n in range(12)]
    client.force_login(csm)
    with CaptureQueriesContext(connection) as without:
        client.get(reverse(url_name), {"per_page": 10})

    for customer in customers:
        tuning.override_band(customer=customer, band="healthy", reason=REASON, by=csm)
    with CaptureQueriesContext(connection) as with_overrides:
        response = client.get(reverse(url_name), {"per_page": 10})

    assert len(response.context["page"]) == 10
    assert len(with_overrides) == len(without)


def test_customer_page_costs_the_same_queries_however_many_overrides(client, csm):
    customer = account(owner=csm)
    tuning.override_band(customer=customer, band="healthy", reason=REASON, by=csm)
    client.force_login(csm)
    with CaptureQueriesContext(connection) as one:
        page(client, customer)

    for band in ("unhealthy", "neutral", "very_healthy"):
        tuning.override_band(customer=customer, band=band, reason=REASON, by=csm)
    with CaptureQueriesContext(connection) as four:
        response = page(client, customer)

    assert response.context["override"].band == "very_healthy"
    assert len(response.context["overrides"]) == 4
    assert len(one) == len(four)
    # The budget of test_customer_page_costs_a_fixed_number_of_queries.
    assert len(four) <= 16
