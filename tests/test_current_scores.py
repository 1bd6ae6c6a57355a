"""What pages read instead of the snapshots: each customer's current score
(its newest official snapshot and the change over 30 days, kept on the
customer) and ``BandTally`` (snapshots per band and day, for the monthly
band mix).

Expected changes follow DESIGN.md rule 9: the score as of D minus the score
of the latest snapshot on or before D-30, if that one is at most 7 days older
than D-30 and both are scored.
"""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from health import selectors, tuning
from health.models import BandTally, Customer, ScoreModel, ScoreSnapshot
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


def current(customer) -> tuple:
    """(scored on, score, band, score 30 days ago, change) as stored."""
    return Customer.objects.values_list(
        "scored_on", "current_score", "current_band", "score_30d_ago", "delta_30d"
    ).get(pk=customer.pk)


def test_current_score_is_the_newest_snapshot_with_its_change_over_30_days(
    customer, model
):
    snapshot(customer, model, D - timedelta(days=60), 20.0, "unhealthy")
    # D-30 is 03-01; 02-26 is three days older, within the seven allowed.
    snapshot(customer, model, date(2026, 2, 26), 50.5)
    snapshot(customer, model, D, 62.0, "healthy")

    scored_on, score, band, then, delta = current(customer)

    assert (scored_on, score, band, then) == (D, 62.0, "healthy", 50.5)
    assert delta == pytest.approx(11.5)


def test_a_baseline_more_than_seven_days_before_d_minus_30_gives_no_change(
    customer, model
):
    # D-30 is 03-01; 02-21 is eight days older.
    snapshot(customer, model, date(2026, 2, 21), 50.0)
    snapshot(customer, model, D, 62.0, "healthy")

    assert current(customer) == (D, 62.0, "healthy", None, None)


def test_an_unscored_end_gives_no_change(customer, model):
    snapshot(customer, model, D - timedelta(days=30), 50.0)
    snapshot(customer, model, D, None, "unscored")

    assert current(customer) == (D, None, "unscored", 50.0, None)


def test_scoring_an_older_day_keeps_the_newest_and_updates_its_change(customer, model):
    snapshot(customer, model, D - timedelta(days=30), 55.0)
    snapshot(customer, model, D, 70.0, "healthy")
    assert current(customer)[4] == pytest.approx(15.0)

    # The customer has no inputs: re-scoring D-30 makes it unscored that day.
    score_customers(customer_ids=[customer.pk], as_of=D - timedelta(days=30))

    assert current(customer) == (D, 70.0, "healthy", None, None)


def test_scoring_a_newer_day_moves_the_current_score(customer, model):
    snapshot(customer, model, D - timedelta(days=30), 55.0)

    score_customers(customer_ids=[customer.pk], as_of=D)

    assert current(customer) == (D, None, "unscored", 55.0, None)


def test_a_draft_snapshot_becomes_current_only_when_its_model_is_published(
    customer, model, admin_user
):
    snapshot(customer, model, D - timedelta(days=1), 40.0)
    draft = tuning.clone_model(model=model, author=admin_user)
    snapshot(customer, draft, D, 90.0, "very_healthy")
    assert current(customer)[:3] == (D - timedelta(days=1), 40.0, "neutral")

    tuning.publish_model(model=draft, author=admin_user, note="Tried on March")

    assert current(customer)[:3] == (D, 90.0, "very_healthy")


def test_a_customer_who_churned_falls_back_to_the_snapshot_before(customer, model):
    snapshot(customer, model, D - timedelta(days=10), 45.0)
    snapshot(customer, model, D, 47.0)
    customer.churned_on = D - timedelta(days=5)
    customer.save()

    # Not a customer on D any more: scoring D removes that day's snapshot.
    score_customers(customer_ids=[customer.pk], as_of=D)

    assert current(customer)[:2] == (D - timedelta(days=10), 45.0)


def test_a_customer_left_without_snapshots_has_no_current_score(customer, model):
    snapshot(customer, model, D, 47.0)
    customer.churned_on = D - timedelta(days=5)
    customer.save()

    score_customers(customer_ids=[customer.pk], as_of=D)

    assert current(customer) == (None, None, None, None, None)
    assert not ScoreSnapshot.objects.filter(customer=customer).exists()


def test_saving_a_customer_loaded_before_a_rescore_keeps_the_new_score(customer, model):
    loaded = Customer.objects.get(pk=customer.pk)
    snapshot(customer, model, D, 47.0)

    loaded.name = "Acme Inc"
    loaded.save()

    assert current(customer)[:2] == (D, 47.0)
    assert Customer.objects.get(pk=customer.pk).name == "Acme Inc"


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


# --- The migration that fills the current scores ----------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_migration_fills_current_scores_from_the_snapshots_stored():
    from django.db.migrations.executor import MigrationExecutor

    before = [("health", "0007_scores_on_customers")]
    after = [("health", "0008_fill_current_scores")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    OldCustomer = apps.get_model("health", "Customer")
    Model = apps.get_model("health", "ScoreModel")
    Snapshot = apps.get_model("health", "ScoreSnapshot")
    official = Model.objects.get(status="active", segment="")
    draft = Model.objects.create(name="Try", version=1, status="draft")
    acme = OldCustomer.objects.create(name="Acme", external_id="ACME")
    late = OldCustomer.objects.create(name="Late", external_id="LATE")
    OldCustomer.objects.create(name="Never", external_id="NEVER")
    for customer, model, as_of, score, band in [
        # D-30 is 03-01: 02-22 is seven days older, the oldest allowed.
        (acme, official, date(2026, 2, 22), 50.5, "neutral"),
        (acme, official, D, 62.0, "healthy"),
        (acme, draft, D + timedelta(days=1), 99.0, "very_healthy"),
        # 02-21 is eight days older: no change.
        (late, official, date(2026, 2, 21), 30.0, "unhealthy"),
        (late, official, D, 35.0, "unhealthy"),
    ]:
        Snapshot.objects.create(
            customer=customer,
            model=model,
            as_of=as_of,
            score=score,
            band=band,
            coverage=1,
        )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)

    rows = {
        row[0]: row[1:]
        for row in Customer.objects.values_list(
            "external_id",
            "scored_on",
            "current_score",
            "current_band",
            "score_30d_ago",
            "delta_30d",
        )
    }
    assert rows["ACME"][:4] == (D, 62.0, "healthy", 50.5)
    assert rows["ACME"][4] == pytest.approx(11.5)
    assert rows["LATE"] == (D, 35.0, "unhealthy", None, None)
    assert rows["NEVER"] == (None, None, None, None, None)


def test_a_score_run_writes_the_score_it_computed_and_its_change(model):
    from tests.test_scoring_db import D as SCORED_ON
    from tests.test_scoring_db import add_simple_inputs, make_customer

    customer = make_customer("RUN")
    add_simple_inputs(customer)
    snapshot(customer, model, SCORED_ON - timedelta(days=30), 50.0)

    score_customers(customer_ids=[customer.pk], as_of=SCORED_ON)

    # test_scoring_db works these inputs out to 61.6, healthy.
    scored_on, score, band, then, delta = current(customer)
    assert (scored_on, score, band, then) == (SCORED_ON, 61.6, "healthy", 50.0)
    assert delta == pytest.approx(11.6)


# --- Who is a current customer ----------------------------------------------


def test_scoring_a_day_again_drops_the_snapshots_of_those_no_longer_customers(
    customer, model
):
    from health import jobs

    stays = Customer.objects.create(name="Stays", external_id="STAYS")
    snapshot(customer, model, D - timedelta(days=1), 45.0)
    snapshot(customer, model, D, 47.0)
    snapshot(stays, model, D, 52.0)
    # Churned before D after D was scored; a run of D must forget its day.
    customer.churned_on = D - timedelta(days=3)
    customer.save()

    jobs.start_score_all(as_of=D)

    assert not ScoreSnapshot.objects.filter(customer=customer, as_of=D).exists()
    assert current(customer)[:2] == (D - timedelta(days=1), 45.0)
    # The customer who stays is scored again (no inputs: unscored).
    assert current(stays)[:3] == (D, None, "unscored")


def test_lists_show_the_customers_of_today(client, csm, model):
    from health.queue import today

    now = today()
    for name, since, churned in [
        ("Current", now - timedelta(days=400), None),
        ("Leaving next month", now - timedelta(days=400), now + timedelta(days=30)),
        ("Gone", now - timedelta(days=400), now - timedelta(days=1)),
        ("Starts next year", now + timedelta(days=365), None),
    ]:
        customer = Customer.objects.create(
            name=name,
            external_id=name,
            owner=csm,
            customer_since=since,
            churned_on=churned,
        )
        snapshot(customer, model, now - timedelta(days=2), 50.0)
    client.force_login(csm)

    response = client.get("/customers/", {"sort": "name"})

    names = [c.name for c in response.context["page"]]
    assert names == ["Current", "Leaving next month"]
