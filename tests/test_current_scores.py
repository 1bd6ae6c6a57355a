"""The tables pages read instead of the snapshots: ``CurrentScore`` (each
customer's newest official snapshot and its change over 30 days) and
``BandTally`` (snapshots per band and day, for the monthly band mix).

Expected changes follow DESIGN.md rule 9: the score as of D minus the score
of the latest snapshot on or before D-30, if that one is at most 7 days older
than D-30 and both are scored.
"""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from health import selectors, tuning
from health.models import BandTally, CurrentScore, Customer, ScoreModel, ScoreSnapshot
from health.services import score_customers

pytestmark = pytest.mark.django_db

D = date(2026, 3, 31)


@pytest.fixture
def model() -> ScoreModel:
    return ScoreModel.objects.get(status="active", segment="")


@pytest.fixture
def customer() -> Customer:
    return Customer.objects.create(
        name="Acme", external_id="ACME", customer_since=date(2020, 1, 1)
    )


def snapshot(customer, model, as_of, score, band="neutral") -> ScoreSnapshot:
    return ScoreSnapshot.objects.create(
        customer=customer,
        model=model,
        as_of=as_of,
        score=score,
        band=band,
        coverage=1,
    )


def current(customer) -> CurrentScore | None:
    return CurrentScore.objects.filter(customer=customer).first()


def test_current_score_is_the_newest_snapshot_with_its_change_over_30_days(
    customer, model
):
    snapshot(customer, model, D - timedelta(days=60), 20.0, "unhealthy")
    # D-30 is 03-01; 02-26 is three days older, within the seven allowed.
    baseline = snapshot(customer, model, date(2026, 2, 26), 50.5)
    newest = snapshot(customer, model, D, 62.0, "healthy")

    row = current(customer)

    assert row.snapshot_id == newest.pk
    assert (row.as_of, row.score, row.band) == (D, 62.0, "healthy")
    assert row.score_30d_ago == baseline.score
    assert row.delta_30d == pytest.approx(11.5)


def test_a_baseline_more_than_seven_days_before_d_minus_30_gives_no_change(
    customer, model
):
    # D-30 is 03-01; 02-21 is eight days older.
    snapshot(customer, model, date(2026, 2, 21), 50.0)
    snapshot(customer, model, D, 62.0, "healthy")

    row = current(customer)

    assert (row.score_30d_ago, row.delta_30d) == (None, None)


def test_an_unscored_end_gives_no_change(customer, model):
    snapshot(customer, model, D - timedelta(days=30), 50.0)
    snapshot(customer, model, D, None, "unscored")

    row = current(customer)

    assert (row.score, row.band, row.score_30d_ago, row.delta_30d) == (
        None,
        "unscored",
        50.0,
        None,
    )


def test_scoring_an_older_day_keeps_the_newest_and_updates_its_change(customer, model):
    snapshot(customer, model, D - timedelta(days=30), 55.0)
    newest = snapshot(customer, model, D, 70.0, "healthy")
    assert current(customer).delta_30d == pytest.approx(15.0)

    # The customer has no inputs: re-scoring D-30 makes it unscored that day.
    score_customers(customer_ids=[customer.pk], as_of=D - timedelta(days=30))

    row = current(customer)
    assert row.snapshot_id == newest.pk
    assert (row.score, row.score_30d_ago, row.delta_30d) == (70.0, None, None)


def test_scoring_a_newer_day_moves_the_current_score(customer, model):
    snapshot(customer, model, D - timedelta(days=30), 55.0)

    score_customers(customer_ids=[customer.pk], as_of=D)

    row = current(customer)
    written = ScoreSnapshot.objects.get(customer=customer, as_of=D)
    assert (row.snapshot_id, row.as_of, row.band) == (written.pk, D, "unscored")
    assert row.score_30d_ago == 55.0


def test_a_draft_snapshot_becomes_current_only_when_its_model_is_published(
    customer, model, admin_user
):
    official = snapshot(customer, model, D - timedelta(days=1), 40.0)
    draft = tuning.clone_model(model=model, author=admin_user)
    tried = snapshot(customer, draft, D, 90.0, "very_healthy")
    assert current(customer).snapshot_id == official.pk

    tuning.publish_model(model=draft, author=admin_user, note="Tried on March")

    row = current(customer)
    assert (row.snapshot_id, row.score, row.model_id) == (tried.pk, 90.0, draft.pk)


def test_a_customer_who_churned_falls_back_to_the_snapshot_before(customer, model):
    before = snapshot(customer, model, D - timedelta(days=10), 45.0)
    snapshot(customer, model, D, 47.0)
    customer.churned_on = D - timedelta(days=5)
    customer.save()

    # Not a customer on D any more: scoring D removes that day's snapshot.
    score_customers(customer_ids=[customer.pk], as_of=D)

    assert current(customer).snapshot_id == before.pk


def test_a_customer_left_without_snapshots_has_no_current_score(customer, model):
    snapshot(customer, model, D, 47.0)
    customer.churned_on = D - timedelta(days=5)
    customer.save()

    score_customers(customer_ids=[customer.pk], as_of=D)

    assert current(customer) is None
    assert not ScoreSnapshot.objects.filter(customer=customer).exists()


def test_pages_sort_by_the_stored_change(client, csm, model):
    for name, then, now in [("Falling", 70.0, 45.0), ("Rising", 30.0, 52.5)]:
        customer = Customer.objects.create(name=name, external_id=name, owner=csm)
        snapshot(customer, model, D - timedelta(days=30), then)
        snapshot(customer, model, D, now)
    client.force_login(csm)

    response = client.get("/customers/", {"sort": "delta"})

    rows = list(response.context["page"])
    assert [(c.name, c.delta) for c in rows] == [
        ("Falling", pytest.approx(-25.0)),
        ("Rising", pytest.approx(22.5)),
    ]


# --- Band tallies -----------------------------------------------------------


def test_band_mix_by_month_counts_a_day_once_and_again_after_it_is_written(model):
    month_end = date(2026, 2, 28)
    customers = [
        Customer.objects.create(name=f"C{n}", external_id=f"C{n}") for n in range(3)
    ]
    for customer in customers[:2]:
        snapshot(customer, model, month_end, 10.0, "very_unhealthy")

    first = selectors.band_mix_by_month([month_end])
    with CaptureQueriesContext(connection) as queries:
        again = selectors.band_mix_by_month([month_end])

    assert first == again == {month_end: {"very_unhealthy": 2}}
    assert len(queries) == 1
    # The six days before the month end are counted too, and found empty.
    tallies = BandTally.objects.order_by("-as_of").values_list(
        "as_of", "band", "snapshots"
    )
    assert list(tallies) == [(month_end, "very_unhealthy", 2)] + [
        (month_end - timedelta(days=back), "", 0) for back in range(1, 7)
    ]

    snapshot(customers[2], model, month_end, 90.0, "very_healthy")

    assert selectors.band_mix_by_month([month_end]) == {
        month_end: {"very_unhealthy": 2, "very_healthy": 1}
    }


def test_scoring_a_day_forgets_its_tally(customer, model):
    snapshot(customer, model, D, 10.0, "very_unhealthy")
    assert selectors.band_mix_by_month([D]) == {D: {"very_unhealthy": 1}}

    score_customers(customer_ids=[customer.pk], as_of=D)

    assert selectors.band_mix_by_month([D]) == {D: {"unscored": 1}}


def test_deleting_a_customer_forgets_the_tallies(customer, model):
    snapshot(customer, model, D, 10.0, "very_unhealthy")
    assert selectors.band_mix_by_month([D]) == {D: {"very_unhealthy": 1}}

    customer.delete()

    assert not BandTally.objects.exists()
    assert selectors.band_mix_by_month([D]) == {}
