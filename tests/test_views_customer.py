"""The customer page and the writes it offers: interactions, pulses and a
new owner."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from health import services
from health.jobs import today
from health.models import Customer, Interaction, Pulse, ScoreSnapshot
from tests.factories import customer_with_inputs
from tests.test_views import TODAY, scored


def page(client, customer):
    return client.get(reverse("customer-detail", args=[customer.pk]))


def test_customer_page_shows_score_breakdown_chart_and_change(client, csm):
    # Inputs dated around 30 days ago score on both days, differently, as
    # the windows of the derived metrics move.
    customer = customer_with_inputs(1, TODAY - timedelta(days=30), variant=3)
    customer.owner = csm
    customer.save()
    for days in (0, 30, 200):
        services.score_customers(
            customer_ids=[customer.pk], as_of=TODAY - timedelta(days=days)
        )
    now = ScoreSnapshot.objects.get(customer=customer, as_of=TODAY)
    client.force_login(csm)

    response = page(client, customer)

    html = response.content.decode()
    assert response.status_code == 200
    assert f"{now.score:.1f}" in html
    assert "Default:1" in html
    assert "<svg" in html and "<polyline" in html
    for text in ["Active user ratio", "fresh", "stale", "Interactions"]:
        assert text.lower() in html.lower(), text
    changes = response.context["changes"]
    then = ScoreSnapshot.objects.get(customer=customer, as_of=TODAY - timedelta(30))
    total = sum(row["contribution"] for row in changes)
    exact = now.breakdown["exact_score"] - then.breakdown["exact_score"]
    assert response.context["delta"] == round(now.score - then.score, 1) != 0
    assert total == pytest.approx(exact)


def test_customer_page_of_an_unscored_customer(client, csm):
    customer = Customer.objects.create(name="Fresh", external_id="F")
    client.force_login(csm)

    response = page(client, customer)

    assert response.status_code == 200
    assert "not been scored yet" in response.content.decode()


def test_owner_logs_an_interaction_and_sees_the_new_score(
    client, csm, django_capture_on_commit_callbacks
):
    customer = customer_with_inputs(2, today(), variant=2)
    customer.owner = csm
    customer.save()
    services.score_customers(customer_ids=[customer.pk], as_of=today())
    before = ScoreSnapshot.objects.get(customer=customer, as_of=today()).score
    client.force_login(csm)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("customer-log-interaction", args=[customer.pk]),
            {
                "kind": "qbr",
                "occurred_on": today().isoformat(),
                "sentiment": "1",
                "summary": "Renewal looks safe",
            },
        )

    assert response.status_code == 302
    interaction = Interaction.objects.get(customer=customer)
    assert (interaction.kind, interaction.sentiment, interaction.csm) == ("qbr", 1, csm)
    after = ScoreSnapshot.objects.get(customer=customer, as_of=today()).score
    assert after != before
    shown = client.get(response["Location"])
    html = shown.content.decode()
    assert "Renewal looks safe" in html
    assert f"{after:.1f}" in html
    assert "Interaction logged" in html


def test_interaction_form_errors_show_next_to_the_fields(client, csm):
    customer = scored("Acme", {0: 50.0}, owner=csm)
    client.force_login(csm)
    future = (timezone.now() + timedelta(days=3)).date().isoformat()

    response = client.post(
        reverse("customer-log-interaction", args=[customer.pk]),
        {"kind": "fax", "occurred_on": future},
    )

    assert response.status_code == 200
    assert Interaction.objects.count() == 0
    form = response.context["interaction_form"]
    assert set(form.errors) == {"kind", "occurred_on", "sentiment"}
    html = response.content.decode()
    assert 'id="id_occurred_on_errors"' in html
    assert "cannot be in the future" in html


def test_earlier_interaction_is_dated_noon_utc(client, manager):
    customer = scored("Acme", {0: 50.0})
    client.force_login(manager)

    client.post(
        reverse("customer-log-interaction", args=[customer.pk]),
        {"kind": "call", "occurred_on": "2026-01-05", "sentiment": "-1"},
    )

    interaction = Interaction.objects.get()
    assert interaction.occurred_at.isoformat() == "2026-01-05T12:00:00+00:00"


def test_owner_records_a_pulse(client, csm, django_capture_on_commit_callbacks):
    customer = customer_with_inputs(3, today(), variant=1)
    customer.owner = csm
    customer.save()
    client.force_login(csm)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("customer-log-pulse", args=[customer.pk]),
            {"rating": "4", "note": "Champion is back"},
        )

    assert response.status_code == 302
    pulse = Pulse.objects.filter(customer=customer).first()
    assert (pulse.rating, pulse.note, pulse.csm) == (4, "Champion is back", csm)
    assert ScoreSnapshot.objects.filter(customer=customer, as_of=today()).exists()


def test_pulse_needs_a_rating_from_1_to_5(client, csm):
    customer = scored("Acme", {0: 50.0}, owner=csm)
    client.force_login(csm)

    response = client.post(
        reverse("customer-log-pulse", args=[customer.pk]), {"rating": "6"}
    )

    assert response.status_code == 200
    assert "rating" in response.context["pulse_form"].errors
    assert Pulse.objects.count() == 0


def test_another_csm_may_read_but_not_log(client, csm, other_csm):
    customer = scored("Acme", {0: 50.0}, owner=csm)
    client.force_login(other_csm)

    shown = page(client, customer)
    refused = client.post(
        reverse("customer-log-interaction", args=[customer.pk]),
        {"kind": "call", "occurred_on": "2026-01-05", "sentiment": "0"},
    )

    assert shown.status_code == 200
    assert "Log interaction" not in shown.content.decode()
    assert refused.status_code == 403
    assert Interaction.objects.count() == 0


def test_manager_reassigns_the_owner(client, manager, csm, other_csm):
    customer = scored("Acme", {0: 50.0}, owner=csm)
    client.force_login(manager)

    response = client.post(
        reverse("customer-reassign", args=[customer.pk]), {"owner": other_csm.pk}
    )

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.owner == other_csm


def test_reassigning_to_a_user_without_the_csm_role_changes_nothing(
    client, manager, csm, outsider
):
    customer = scored("Acme", {0: 50.0}, owner=csm)
    client.force_login(manager)

    client.post(
        reverse("customer-reassign", args=[customer.pk]), {"owner": outsider.pk}
    )

    customer.refresh_from_db()
    assert customer.owner == csm


def test_csm_may_not_reassign_even_their_own_customer(client, csm, other_csm):
    customer = scored("Acme", {0: 50.0}, owner=csm)
    client.force_login(csm)

    response = client.post(
        reverse("customer-reassign", args=[customer.pk]), {"owner": other_csm.pk}
    )

    assert response.status_code == 403
    customer.refresh_from_db()
    assert customer.owner == csm


@pytest.mark.parametrize(
    ("url_name", "data"),
    [
        ("customer-log-interaction", {"kind": "call", "occurred_on": "2026-01-05"}),
        ("customer-log-pulse", {"rating": "3"}),
        ("customer-reassign", {"owner": ""}),
    ],
)
def test_every_form_needs_its_csrf_token(manager, csm, url_name, data):
    customer = scored("Acme", {0: 50.0}, owner=csm)
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)

    response = client.post(reverse(url_name, args=[customer.pk]), data)

    assert response.status_code == 403
    customer.refresh_from_db()
    assert customer.owner == csm
    assert (Interaction.objects.count(), Pulse.objects.count()) == (0, 0)


def test_customer_page_forms_carry_a_csrf_token(client, manager):
    customer = scored("Acme", {0: 50.0})
    client.force_login(manager)

    html = page(client, customer).content.decode()

    assert html.count('name="csrfmiddlewaretoken"') >= 4  # 3 forms and log out


def test_customer_page_costs_a_fixed_number_of_queries(
    client, csm, django_assert_max_num_queries
):
    customer = scored("Acme", {d: 40.0 + d / 10 for d in range(0, 365, 7)}, owner=csm)
    for n in range(30):
        Interaction.objects.create(
            customer=customer, kind="call", occurred_at=timezone.now(), summary=str(n)
        )
    client.force_login(csm)

    with django_assert_max_num_queries(16):
        response = page(client, customer)

    # The chart covers the 365 days up to today.
    start = today() - timedelta(days=365)
    shown = ScoreSnapshot.objects.filter(customer=customer, as_of__gte=start)
    assert len(response.context["history"]) == shown.count()
