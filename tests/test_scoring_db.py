"""Scoring through the database: ``health.services.score_customers`` gathers
the inputs, scores with the seeded default model and upserts snapshots.

Expected values are worked out by hand from DESIGN.md ("Scoring, exactly");
the scoring date D is 2025-06-30, so the 90-day window of date-times opens on
2025-04-02 00:00 UTC and the 180-day one on 2025-01-02 00:00 UTC.
"""

from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from health.models import (
    Component,
    Customer,
    Interaction,
    Measure,
    Metric,
    MetricReading,
    NpsResponse,
    Opportunity,
    Pulse,
    ScoreModel,
    ScoreSnapshot,
    Ticket,
)
from health.services import score_customers
from health.signals import band_changed

pytestmark = pytest.mark.django_db

D = date(2025, 6, 30)


def at(month: int, day: int, hour: int = 12, minute: int = 0, year=2025):
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def make_customer(external_id: str, **fields) -> Customer:
    fields.setdefault("customer_since", date(2022, 1, 1))
    return Customer.objects.create(
        external_id=external_id, name=f"Customer {external_id}", **fields
    )


def add_readings(customer: Customer, observed_on: date, **values: float) -> None:
    metrics = {m.key: m for m in Metric.objects.filter(key__in=values)}
    MetricReading.objects.bulk_create(
        MetricReading(
            customer=customer, metric=metrics[key], value=value, observed_on=observed_on
        )
        for key, value in values.items()
    )


def add_full_inputs(customers: list[Customer]) -> None:
    """Inputs of every kind, the same for each customer, with records just
    outside every window; DESIGN.md's rules turn them into:

    - active_user_ratio 0.65 (the 2025-06-20 reading: 06-01 is older, 07-01
      after D), feature_adoption_ratio 0.3, login_days_30d 15;
    - nps 25: latest per contact a 9, b 10, c 7, d 2 (a's 0 in March is
      replaced, e answered after D): 100 x (2 - 1) / 4;
    - median_hours_to_close 20: closed in the window after 10, 48, 6 and 30
      hours; sorted 6, 10, 30, 48, median (10 + 30) / 2 (the March ticket
      closed before the window);
    - escalations_90d 1: the June ticket (the March one opened before the
      window);
    - product_count 2 (Core, Analytics; Mobile won after D), renewal_count 2
      (2024-01-15 and D itself), lost_opportunity_share 1 / (1 + 1) = 0.5
      (lost Mobile renewal; the Mobile upsell won after D is open at D);
    - days_since_interaction 5 (06-25; the 07-01 one is after D),
      interaction_sentiment (1 + 1 - 1 + 0) / 4 = 0.25 (01-10 and 07-01 out);
    - a pulse, which the default model does not use.
    """
    metrics = {m.key: m for m in Metric.objects.all()}
    readings, tickets, responses, opportunities = [], [], [], []
    interactions, pulses = [], []

    for customer in customers:
        for key, value, observed_on in [
            ("active_user_ratio", 0.2, date(2025, 6, 1)),
            ("active_user_ratio", 0.65, date(2025, 6, 20)),
            ("active_user_ratio", 0.9, date(2025, 7, 1)),
            ("feature_adoption_ratio", 0.3, date(2025, 6, 20)),
            ("login_days_30d", 15, date(2025, 6, 20)),
        ]:
            readings.append(
                MetricReading(
                    customer=customer,
                    metric=metrics[key],
                    value=value,
                    observed_on=observed_on,
                )
            )

        for n, (opened, closed, escalated) in enumerate(
            [
                (at(6, 1, 8), at(6, 1, 18), True),  # 10 h
                (at(6, 10, 0), at(6, 12, 0), False),  # 48 h
                (at(5, 1, 0), at(5, 1, 6), False),  # 6 h
                (at(5, 20, 0), at(5, 21, 6), False),  # 30 h
                (at(3, 1), at(3, 5), True),  # before the window
            ]
        ):
            tickets.append(
                Ticket(
                    customer=customer,
                    external_id=f"{customer.external_id}-T{n}",
                    opened_at=opened,
                    closed_at=closed,
                    escalated=escalated,
                )
            )

        for contact, score, responded_at in [
            ("a", 0, at(3, 1)),
            ("a", 9, at(6, 1)),
            ("b", 10, at(6, 2)),
            ("c", 7, at(6, 3)),
            ("d", 2, at(6, 4)),
            ("e", 10, at(7, 1, 10)),
        ]:
            responses.append(
                NpsResponse(
                    customer=customer,
                    contact=contact,
                    score=score,
                    responded_at=responded_at,
                )
            )

        for n, (product, kind, stage, created_on, closed_on) in enumerate(
            [
                ("Core", "new", "won", date(2023, 1, 1), date(2023, 2, 1)),
                ("Core", "renewal", "won", date(2024, 1, 1), date(2024, 1, 15)),
                ("Analytics", "cross_sell", "won", date(2024, 3, 1), date(2024, 4, 1)),
                ("Core", "renewal", "won", date(2025, 1, 1), date(2025, 6, 30)),
                ("Mobile", "upsell", "won", date(2025, 6, 1), date(2025, 7, 1)),
                ("Mobile", "renewal", "lost", date(2025, 1, 1), date(2025, 3, 1)),
            ]
        ):
            opportunities.append(
                Opportunity(
                    customer=customer,
                    external_id=f"{customer.external_id}-O{n}",
                    product=product,
                    kind=kind,
                    stage=stage,
                    created_on=created_on,
                    closed_on=closed_on,
                )
            )

        for occurred_at, sentiment in [
            (at(6, 25, 9), 1),
            (at(5, 1), 1),
            (at(4, 2, 0), -1),
            (at(6, 16), 0),
            (at(7, 1, 10), -1),
            (at(1, 10), -1),
        ]:
            interactions.append(
                Interaction(
                    customer=customer,
                    kind="call",
                    occurred_at=occurred_at,
                    sentiment=sentiment,
                )
            )

        for entered_at, rating in [(at(6, 20), 4), (at(7, 1, 10), 2)]:
            pulses.append(
                Pulse(customer=customer, rating=rating, entered_at=entered_at)
            )

    MetricReading.objects.bulk_create(readings)
    Ticket.objects.bulk_create(tickets)
    NpsResponse.objects.bulk_create(responses)
    Opportunity.objects.bulk_create(opportunities)
    Interaction.objects.bulk_create(interactions)
    Pulse.objects.bulk_create(pulses)


def add_simple_inputs(customer: Customer) -> None:
    """Adoption and purchasing only. By hand:
    adoption: active 0.5 -> 60, feature 0.6 -> 100, login 10 -> 60:
    (50x60 + 30x100 + 20x60) / 100 = 72;
    purchasing: one product -> 40, no renewal -> 50, nothing lost or open ->
    share missing: (30x40 + 30x50) / 60 = 45;
    overall (40x72 + 25x45) / 65 = 4005 / 65 = 61.615 -> 61.6, healthy,
    coverage 0.65."""
    add_readings(
        customer,
        date(2025, 6, 20),
        active_user_ratio=0.5,
        feature_adoption_ratio=0.6,
        login_days_30d=10,
    )
    Opportunity.objects.create(
        customer=customer,
        external_id=f"{customer.external_id}-won",
        product="Core",
        kind="new",
        stage="won",
        created_on=date(2025, 1, 1),
        closed_on=date(2025, 1, 10),
    )


def snapshot_of(customer: Customer, as_of: date = D) -> ScoreSnapshot:
    return ScoreSnapshot.objects.get(customer=customer, as_of=as_of)


@pytest.fixture
def received():
    """The band_changed signals sent during the test, as keyword dicts."""
    sent = []

    def receiver(sender, **kwargs):
        kwargs.pop("signal")
        sent.append(kwargs)

    band_changed.connect(receiver, weak=False)
    yield sent
    band_changed.disconnect(receiver)


# --- The worked example -------------------------------------------------------


def test_full_example_stores_the_hand_computed_score_and_breakdown():
    customer = make_customer("FULL")
    add_full_inputs([customer])

    scored = score_customers(customer_ids=[customer.pk], as_of=D)

    assert scored == 1
    snapshot = snapshot_of(customer)
    # adoption 71, interactions 522.5/7 (replacing support), purchasing 63.25:
    # (40x71 + 35 x 522.5/7 + 25x63.25) / 100 = 7033.75 / 100 = 70.3375
    assert snapshot.score == 70.3
    assert snapshot.band == "healthy"
    assert snapshot.coverage == 1.0
    assert snapshot.model.label == "Default:1"
    assert snapshot.breakdown["exact_score"] == pytest.approx(70.3375)

    components = {c["key"]: c for c in snapshot.breakdown["components"]}
    summary = {
        key: (c["score"], c["status"], c["effective_weight"])
        for key, c in components.items()
    }
    assert summary == {
        # (50x80 + 30x50 + 20x80) / 100 = 71
        "adoption": (71.0, "present", 40),
        # (40 x 475/7 + 30x76 + 30x60) / 100 = 67.942857, left out
        "support": (67.9, "replaced", 0),
        # (30x70 + 30x87.5 + 40x40) / 100 = 63.25, half up
        "purchasing": (63.3, "present", 25),
        # (40 x 650/7 + 60x62.5) / 100 = 74.642857, with support's 35
        "interactions": (74.6, "present", 35),
    }
    assert components["adoption"]["weight"] == 40
    assert components["interactions"]["replaces"] == "support"

    measures = {
        m["metric"]: (m["value"], m["points"], m["weight"], m["status"])
        for c in components.values()
        for m in c["measures"]
    }
    assert measures == {
        "active_user_ratio": (0.65, 80.0, 50, "fresh"),  # 60 + 40 x 0.15/0.3
        "feature_adoption_ratio": (0.3, 50.0, 30, "fresh"),  # 100 x 0.3/0.6
        "login_days_30d": (15.0, 80.0, 20, "fresh"),  # 60 + 40 x 5/10
        "nps": (25.0, 67.86, 40, "fresh"),  # 50 + 50 x 25/70
        "median_hours_to_close": (20.0, 76.0, 30, "fresh"),  # 100 - 30 x 16/20
        "escalations_90d": (1.0, 60.0, 30, "fresh"),
        "product_count": (2.0, 70.0, 30, "fresh"),
        "renewal_count": (2.0, 87.5, 30, "fresh"),  # 75 + 25 x 1/2
        "lost_opportunity_share": (0.5, 40.0, 40, "fresh"),
        "days_since_interaction": (5.0, 92.86, 40, "fresh"),  # 100 - 20 x 5/14
        "interaction_sentiment": (0.25, 62.5, 60, "fresh"),  # 50 + 50 x 0.25
    }
    adoption = components["adoption"]["measures"]
    assert adoption[0]["observed_on"] == "2025-06-20"


def test_sparse_customer_breakdown_marks_missing_measures():
    customer = make_customer("SPARSE")
    add_readings(customer, D, active_user_ratio=0.8)
    # Too few NPS contacts (two), one old ticket, one old interaction.
    for contact in ("a", "b"):
        NpsResponse.objects.create(
            customer=customer, contact=contact, score=10, responded_at=at(6, 1)
        )
    Ticket.objects.create(
        customer=customer, external_id="SP-1", opened_at=at(1, 1), closed_at=at(1, 2)
    )
    Interaction.objects.create(
        customer=customer, kind="call", occurred_at=at(1, 10), sentiment=1
    )

    score_customers(customer_ids=[customer.pk], as_of=D)

    snapshot = snapshot_of(customer)
    # adoption: active 0.8 -> 100 alone; support: escalations 0 -> 100 alone;
    # interactions: 171 days since 2025-01-10 -> 0 (flat beyond 90), present,
    # so it replaces support; purchasing missing.
    # (40x100 + 35x0) / 75 = 53.333 -> 53.3, coverage 0.75
    assert snapshot.score == 53.3
    assert snapshot.band == "neutral"
    assert snapshot.coverage == 0.75

    components = {c["key"]: c for c in snapshot.breakdown["components"]}
    assert components["support"]["status"] == "replaced"
    assert components["support"]["score"] == 100.0
    assert components["purchasing"]["status"] == "missing"
    assert components["purchasing"]["score"] is None
    assert components["interactions"]["score"] == 0.0

    measures = {
        m["metric"]: (m["value"], m["points"], m["status"])
        for c in components.values()
        for m in c["measures"]
    }
    assert measures == {
        "active_user_ratio": (0.8, 100.0, "fresh"),
        "feature_adoption_ratio": (None, None, "missing"),
        "login_days_30d": (None, None, "missing"),
        "nps": (None, None, "missing"),
        "median_hours_to_close": (None, None, "missing"),
        "escalations_90d": (0.0, 100.0, "fresh"),
        "product_count": (None, None, "missing"),
        "renewal_count": (None, None, "missing"),
        "lost_opportunity_share": (None, None, "missing"),
        "days_since_interaction": (171.0, 0.0, "fresh"),
        "interaction_sentiment": (None, None, "missing"),
    }


def test_reading_older_than_its_freshness_shows_as_stale():
    customer = make_customer("STALE")
    add_readings(customer, date(2025, 6, 20), active_user_ratio=0.5)
    # D - 120 days: older than the measure's 90-day freshness.
    add_readings(customer, date(2025, 3, 2), feature_adoption_ratio=0.9)

    score_customers(customer_ids=[customer.pk], as_of=D)

    adoption = snapshot_of(customer).breakdown["components"][0]
    measures = {m["metric"]: m for m in adoption["measures"]}
    assert measures["feature_adoption_ratio"]["points"] is None
    assert measures["feature_adoption_ratio"]["status"] == "stale"
    assert measures["login_days_30d"]["status"] == "missing"


def test_model_with_a_pulse_measure_uses_the_latest_pulse_in_60_days():
    model = ScoreModel.objects.create(name="Pulse", status="draft")
    component = Component.objects.create(
        model=model, key="pulse", name="CSM pulse", weight=100
    )
    Measure.objects.create(
        component=component,
        metric=Metric.objects.get(key="pulse"),
        weight=1,
        curve=[[1, 0], [5, 100]],
    )
    customer = make_customer("PULSE")
    add_full_inputs([customer])

    score_customers(customer_ids=[customer.pk], as_of=D, model=model)

    # The 06-20 pulse of 4 (the 2 came after D): 100 x (4 - 1) / 4 = 75
    snapshot = ScoreSnapshot.objects.get(customer=customer, model=model)
    assert snapshot.score == 75.0
    assert snapshot.band == "healthy"
    assert snapshot.coverage == 1.0


# --- Who is scored --------------------------------------------------------------


def test_churned_customer_is_not_scored_and_loses_that_days_snapshot():
    customer = make_customer("CHURN")
    add_simple_inputs(customer)
    score_customers(customer_ids=[customer.pk], as_of=date(2025, 6, 29))
    score_customers(customer_ids=[customer.pk], as_of=D)
    assert snapshot_of(customer).score == 61.6

    customer.churned_on = D
    customer.save()
    scored = score_customers(customer_ids=[customer.pk], as_of=D)

    assert scored == 0
    assert not ScoreSnapshot.objects.filter(customer=customer, as_of=D).exists()
    # The day before it was still a customer: that snapshot stays.
    assert snapshot_of(customer, date(2025, 6, 29)).score == 61.6


def test_customer_churning_after_the_date_is_still_scored():
    customer = make_customer("LATER-CHURN", churned_on=date(2025, 7, 1))
    add_simple_inputs(customer)

    assert score_customers(customer_ids=[customer.pk], as_of=D) == 1
    assert snapshot_of(customer).score == 61.6


def test_customer_starting_after_the_date_is_not_scored():
    future = make_customer("FUTURE", customer_since=date(2025, 7, 1))
    starts_on_d = make_customer("STARTS-ON-D", customer_since=D)
    unknown = make_customer("UNKNOWN", customer_since=None)
    for customer in (future, starts_on_d, unknown):
        add_simple_inputs(customer)

    scored = score_customers(
        customer_ids=[future.pk, starts_on_d.pk, unknown.pk], as_of=D
    )

    assert scored == 2
    assert set(
        ScoreSnapshot.objects.values_list("customer__external_id", flat=True)
    ) == {"STARTS-ON-D", "UNKNOWN"}


# --- Upsert -------------------------------------------------------------------------


def test_rerunning_a_day_replaces_its_snapshots_with_the_new_values():
    changed, unchanged = make_customer("CHANGED"), make_customer("UNCHANGED")
    for customer in (changed, unchanged):
        add_simple_inputs(customer)
    ids = [changed.pk, unchanged.pk]
    score_customers(customer_ids=ids, as_of=D)
    assert snapshot_of(changed).score == 61.6

    Opportunity.objects.create(
        customer=changed,
        external_id="CHANGED-open",
        product="Mobile",
        kind="upsell",
        stage="open",
        created_on=date(2025, 6, 1),
    )
    score_customers(customer_ids=ids, as_of=D)

    assert ScoreSnapshot.objects.filter(as_of=D).count() == 2
    # purchasing: lost 0, open 1 -> share 0 -> 100 points;
    # (30x40 + 30x50 + 40x100) / 100 = 67;
    # overall (40x72 + 25x67) / 65 = 4555 / 65 = 70.077 -> 70.1
    assert snapshot_of(changed).score == 70.1
    assert snapshot_of(changed).band == "healthy"
    assert snapshot_of(unchanged).score == 61.6


# --- Cost -----------------------------------------------------------------------------


def test_scoring_a_chunk_costs_the_same_queries_for_5_or_50_customers(
    django_assert_num_queries,
):
    customers = [make_customer(f"Q{n:03}") for n in range(55)]
    add_full_inputs(customers)
    small = [c.pk for c in customers[:5]]
    large = [c.pk for c in customers[5:]]

    with CaptureQueriesContext(connection) as five:
        assert score_customers(customer_ids=small, as_of=D) == 5
    with django_assert_num_queries(len(five.captured_queries)):
        assert score_customers(customer_ids=large, as_of=D) == 50

    # DESIGN.md: "a handful of set-based queries" per chunk.
    assert len(five.captured_queries) <= 20
    assert set(ScoreSnapshot.objects.values_list("score", flat=True)) == {70.3}


# --- Announcing band changes ---------------------------------------------------------


def test_band_change_is_announced_after_commit_with_old_and_new_band(
    django_capture_on_commit_callbacks, received
):
    customer = make_customer("BAND")
    add_simple_inputs(customer)

    with django_capture_on_commit_callbacks(execute=True):
        score_customers(customer_ids=[customer.pk], as_of=D)
        assert received == []  # nothing before the commit
    first = snapshot_of(customer)
    assert received == [
        {
            "customer_id": customer.pk,
            "snapshot_id": first.pk,
            "as_of": D,
            "old_band": None,
            "new_band": "healthy",  # 61.6
        }
    ]

    # Adoption drops to 0 on 2025-07-01: (40x0 + 25x45) / 65 = 17.3.
    add_readings(
        customer,
        date(2025, 7, 1),
        active_user_ratio=0,
        feature_adoption_ratio=0,
        login_days_30d=0,
    )
    received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        score_customers(customer_ids=[customer.pk], as_of=date(2025, 7, 1))
        assert received == []

    second = snapshot_of(customer, date(2025, 7, 1))
    assert second.score == 17.3
    assert received == [
        {
            "customer_id": customer.pk,
            "snapshot_id": second.pk,
            "as_of": date(2025, 7, 1),
            "old_band": "healthy",
            "new_band": "very_unhealthy",
        }
    ]


def test_band_change_is_not_announced_for_a_date_before_the_newest_snapshot(
    django_capture_on_commit_callbacks, received
):
    customer = make_customer("BACKFILL")
    add_simple_inputs(customer)
    add_readings(
        customer,
        date(2025, 7, 1),
        active_user_ratio=0,
        feature_adoption_ratio=0,
        login_days_30d=0,
    )
    score_customers(customer_ids=[customer.pk], as_of=date(2025, 7, 1))
    assert snapshot_of(customer, date(2025, 7, 1)).band == "very_unhealthy"

    with django_capture_on_commit_callbacks(execute=True):
        score_customers(customer_ids=[customer.pk], as_of=D)

    # Healthy on D (61.6), very unhealthy on the newer 07-01: no announcement.
    assert snapshot_of(customer).band == "healthy"
    assert received == []


def test_unchanged_band_is_not_announced(django_capture_on_commit_callbacks, received):
    customer = make_customer("STEADY")
    add_simple_inputs(customer)
    score_customers(customer_ids=[customer.pk], as_of=date(2025, 6, 29))

    with django_capture_on_commit_callbacks(execute=True):
        score_customers(customer_ids=[customer.pk], as_of=D)

    assert snapshot_of(customer).band == "healthy"
    assert received == []
