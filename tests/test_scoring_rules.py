"""The scoring arithmetic of DESIGN.md's "Scoring, exactly", one rule at a time.

Every expected value is worked out by hand from DESIGN.md; the comment beside
it shows the arithmetic. The scoring date D is 2025-06-30 throughout, so "as
of D" ends at 2025-07-01 00:00 UTC and the windows open at:

- (D-60d, D]:  2025-05-02 00:00 (2025-07-01 minus 60 days)
- (D-90d, D]:  2025-04-02 00:00 (2025-07-01 minus 90 days)
- (D-180d, D]: 2025-01-02 00:00 (2025-07-01 minus 180 days)
- (D-365d, D] over dates: 2024-06-30 < day <= 2025-06-30
"""

from datetime import UTC, date, datetime

import pytest

from health.defaults import DEFAULT_COMPONENTS, DERIVED, METRICS
from health.scoring import (
    Activity,
    ComponentSpec,
    MeasureSpec,
    ModelSpec,
    band_for,
    contributions,
    curve_points,
    derive_metrics,
    nps_score,
    round_half_up,
    score_customer,
)

D = date(2025, 6, 30)

ACTIVE_USERS = ((0, 0), (0.5, 60), (0.8, 100))
HOURS_TO_CLOSE = ((4, 100), (24, 70), (72, 30), (168, 0))
ESCALATIONS = ((0, 100), (1, 60), (3, 20), (5, 0))
IDENTITY = ((0.0, 0.0), (100.0, 100.0))


def default_model() -> ModelSpec:
    """The default model as ``health.inputs.load_model_spec`` builds it from the
    rows the 0002 migration seeds out of ``health.defaults``."""
    derived = {key for key, _, _, source, _ in METRICS if source == DERIVED}
    return ModelSpec(
        components=tuple(
            ComponentSpec(
                key=key,
                name=name,
                weight=weight,
                replaces=replaces,
                measures=tuple(
                    MeasureSpec(
                        metric=metric,
                        weight=measure_weight,
                        curve=tuple((float(v), float(p)) for v, p in curve),
                        derived=metric in derived,
                    )
                    for metric, measure_weight, curve in measures
                ),
            )
            for key, name, weight, replaces, measures in DEFAULT_COMPONENTS
        )
    )


def single_measure_model(*weights: float) -> ModelSpec:
    """Components c0, c1, ... of the given weights, each one measure m0, m1, ...
    whose points equal its value (0-100), so a test can set a component's exact
    score directly."""
    return ModelSpec(
        components=tuple(
            ComponentSpec(
                key=f"c{i}",
                name=f"C{i}",
                weight=weight,
                measures=(MeasureSpec(f"m{i}", 1, IDENTITY, derived=True),),
            )
            for i, weight in enumerate(weights)
        )
    )


def at(month: int, day: int, hour: int = 12, minute: int = 0, year=2025):
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def components_of(result) -> dict:
    return {c.key: c for c in result.components}


# Fresh readings (observed 2025-06-20, inside 90 days) for the adoption
# component, and derived values for the other three. Hand-worked points:
# active_user_ratio 0.65 -> 60 + 40 x 0.15 / 0.3 = 80
# feature_adoption_ratio 0.3 -> 100 x 0.3 / 0.6 = 50
# login_days_30d 15 -> 60 + 40 x 5 / 10 = 80
# adoption = (50x80 + 30x50 + 20x80) / 100 = 7100 / 100 = 71
READINGS = {
    "active_user_ratio": (0.65, date(2025, 6, 20)),
    "feature_adoption_ratio": (0.3, date(2025, 6, 20)),
    "login_days_30d": (15.0, date(2025, 6, 20)),
}
# nps 25 -> 50 + 50 x 25 / 70 = 475/7 = 67.857142...
# median_hours_to_close 20 -> 100 - 30 x 16 / 20 = 76
# escalations_90d 1 -> 60
# support = (40 x 475/7 + 30x76 + 30x60) / 100 = 47560/7 / 100 = 67.942857...
SUPPORT = {"nps": 25.0, "median_hours_to_close": 20.0, "escalations_90d": 1.0}
# product_count 2 -> 70; renewal_count 2 -> 75 + 25 x 1/2 = 87.5;
# lost_opportunity_share 0.5 -> 40
# purchasing = (30x70 + 30x87.5 + 40x40) / 100 = 6325 / 100 = 63.25
PURCHASING = {
    "product_count": 2.0,
    "renewal_count": 2.0,
    "lost_opportunity_share": 0.5,
}
# days_since_interaction 5 -> 100 - 20 x 5 / 14 = 650/7 = 92.857142...
# interaction_sentiment 0.25 -> 50 + 50 x 0.25 = 62.5
# interactions = (40 x 650/7 + 60 x 62.5) / 100 = 522.5/7 = 74.642857...
INTERACTIONS = {"days_since_interaction": 5.0, "interaction_sentiment": 0.25}
NO_INTERACTIONS = {"days_since_interaction": None, "interaction_sentiment": None}


# --- 1. Curves ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.25, 30.0),  # 0 + 60 x 0.25 / 0.5
        (0.5, 60.0),  # on a point
        (0.65, 80.0),  # 60 + 40 x (0.65 - 0.5) / 0.3
        (0.0, 0.0),  # first point
        (0.8, 100.0),  # last point
    ],
)
def test_curve_interpolates_linearly_between_neighbours(value, expected):
    assert curve_points(ACTIVE_USERS, value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-0.3, 0.0),  # below 0: flat at the first point's 0
        (1.0, 100.0),  # above 0.8: flat at the last point's 100
        (1e9, 100.0),
    ],
)
def test_curve_is_flat_beyond_its_ends(value, expected):
    assert curve_points(ACTIVE_USERS, value) == expected


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        (1, 100.0),  # below 4: flat at 100
        (14, 85.0),  # 100 - 30 x (14 - 4) / 20
        (48, 50.0),  # 70 - 40 x (48 - 24) / 48
        (120, 15.0),  # 30 - 30 x (120 - 72) / 96
        (168, 0.0),
        (500, 0.0),  # beyond 168: flat at 0
    ],
)
def test_falling_curve_gives_fewer_points_for_higher_values(hours, expected):
    assert curve_points(HOURS_TO_CLOSE, hours) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("escalations", "expected"),
    [
        (0, 100.0),
        (2, 40.0),  # 60 - 40 x (2 - 1) / 2
        (4, 10.0),  # 20 - 20 x (4 - 3) / 2
        (9, 0.0),  # flat beyond 5
    ],
)
def test_escalation_curve_falls_through_each_segment(escalations, expected):
    assert curve_points(ESCALATIONS, escalations) == pytest.approx(expected)


# --- 2. Imported readings --------------------------------------------------------


def adoption_measures(readings: dict) -> dict:
    result = score_customer(default_model(), D, readings, {})
    return {m.metric: m for m in components_of(result)["adoption"].measures}


def test_reading_inside_freshness_window_is_fresh_and_scored():
    # D - 89 days = 2025-04-02, after D - 90 days: fresh; 0.65 -> 80 points.
    measures = adoption_measures({"active_user_ratio": (0.65, date(2025, 4, 2))})

    active = measures["active_user_ratio"]
    assert active.status == "fresh"
    assert active.value == 0.65
    assert active.points == pytest.approx(80.0)


def test_reading_at_freshness_limit_is_stale_and_earns_no_points():
    # D - 90 days = 2025-04-01 is not after D - 90 days: stale.
    readings = {
        "active_user_ratio": (0.65, date(2025, 4, 1)),
        "login_days_30d": (5.0, date(2025, 6, 30)),
    }

    result = score_customer(default_model(), D, readings, {})

    adoption = components_of(result)["adoption"]
    measures = {m.metric: m for m in adoption.measures}
    assert measures["active_user_ratio"].status == "stale"
    assert measures["active_user_ratio"].points is None
    # Only login_days_30d counts: 5 -> 60 x 5 / 10 = 30.
    assert adoption.exact_score == pytest.approx(30.0)


def test_reading_dated_after_as_of_is_ignored():
    readings = {"active_user_ratio": (0.9, date(2025, 7, 1))}

    active = adoption_measures(readings)["active_user_ratio"]

    assert active.status == "missing"
    assert active.value is None
    assert active.points is None


def test_measure_freshness_can_be_shorter_than_the_default():
    model = ModelSpec(
        components=(
            ComponentSpec(
                "c",
                "C",
                100,
                (MeasureSpec("m", 1, IDENTITY, freshness_days=30),),
            ),
        )
    )

    # D - 29 days = 2025-06-01: fresh. D - 30 days = 2025-05-31: stale.
    fresh = score_customer(model, D, {"m": (70.0, date(2025, 6, 1))}, {})
    stale = score_customer(model, D, {"m": (70.0, date(2025, 5, 31))}, {})

    assert fresh.score == 70.0
    assert stale.components[0].measures[0].status == "stale"
    assert stale.score is None
    assert stale.band == "unscored"


# --- 3. Derived metrics -----------------------------------------------------------


def derived(activity: Activity, *keys: str) -> dict:
    return derive_metrics(D, activity, keys)


def test_nps_counts_promoters_minus_detractors_over_contacts():
    responses = [
        ("a", 9, at(6, 1)),
        ("b", 10, at(6, 2)),
        ("c", 7, at(6, 3)),
        ("d", 2, at(6, 4)),
    ]

    # promoters a, b; passive c; detractor d: 100 x (2 - 1) / 4 = 25
    assert nps_score(D, responses) == pytest.approx(25.0)


def test_nps_is_missing_with_fewer_than_three_contacts():
    # Three responses but only two contacts: a's latest counts once.
    responses = [("a", 9, at(3, 1)), ("a", 10, at(6, 1)), ("b", 10, at(6, 2))]

    assert nps_score(D, responses) is None
    assert derived(Activity(nps=responses), "nps") == {"nps": None}


def test_nps_counts_only_the_latest_answer_of_a_contact_in_the_window():
    responses = [
        ("a", 2, at(3, 1)),  # a's earlier answer: replaced by 10
        ("a", 10, at(6, 10)),
        ("a", 0, at(7, 1, 0)),  # after D: ignored, so a stays at 10
        ("b", 9, at(6, 1)),
        ("c", 5, at(6, 2)),
    ]

    # a 10 and b 9 promote, c 5 detracts: 100 x (2 - 1) / 3 = 33.33
    assert nps_score(D, responses) == pytest.approx(100 / 3)


def test_nps_ignores_responses_outside_the_180_day_window():
    responses = [
        ("a", 9, at(1, 2, 0)),  # 2025-01-02 00:00: first instant inside
        ("b", 10, at(6, 30, 23, 59)),  # last minute of D: inside
        ("c", 0, at(4, 1)),
        ("d", 0, at(1, 1, 23, 59)),  # 2025-01-01 23:59: before the window
        ("e", 0, at(7, 1, 0)),  # 2025-07-01 00:00: after D
    ]

    # a, b promote, c detracts; d and e are out: 100 x (2 - 1) / 3 = 33.33
    assert nps_score(D, responses) == pytest.approx(100 / 3)
    # Without c only two contacts remain inside: missing.
    assert nps_score(D, [r for r in responses if r[0] != "c"]) is None


def test_median_hours_to_close_uses_tickets_closed_in_the_90_day_window():
    tickets = [
        (at(6, 1, 8), at(6, 1, 18), False),  # 10 h
        (at(6, 10, 0), at(6, 12, 0), False),  # 48 h
        (at(5, 1, 0), at(5, 1, 6), False),  # 6 h
        (at(5, 20, 0), at(5, 21, 6), False),  # 30 h
        # Closed 2025-04-01 23:00, before the window opens on 04-02: out.
        (at(3, 1, 0), at(4, 1, 23), False),
        # Closed 2025-07-01 02:00, after D: out.
        (at(6, 30, 20), at(7, 1, 2), False),
        (at(6, 15), None, False),  # still open
    ]

    # sorted 6, 10, 30, 48: median (10 + 30) / 2 = 20
    values = derived(Activity(tickets=tickets), "median_hours_to_close")

    assert values["median_hours_to_close"] == pytest.approx(20.0)


def test_median_hours_to_close_is_missing_when_none_closed_in_the_window():
    tickets = [(at(1, 1), at(1, 2), False), (at(6, 1), None, False)]

    values = derived(Activity(tickets=tickets), "median_hours_to_close")

    assert values["median_hours_to_close"] is None


def test_escalations_count_escalated_tickets_opened_in_the_90_day_window():
    tickets = [
        (at(4, 2, 0), None, True),  # first instant of the window: in
        (at(6, 30, 23, 59), None, True),  # last minute of D: in
        (at(4, 1, 23, 59), None, True),  # before the window: out
        (at(7, 1, 0), None, True),  # after D: out
        (at(6, 1), None, False),  # not escalated
    ]

    values = derived(Activity(tickets=tickets), "escalations_90d")

    assert values["escalations_90d"] == 2.0


def test_escalations_are_zero_with_a_ticket_but_none_escalated_in_the_window():
    # An old escalated ticket, opened before the window: zero, not missing.
    old = Activity(tickets=[(at(1, 5), at(1, 6), True)])
    # No ticket in the lists, but one on record before the date.
    on_record = Activity(any_ticket=True)

    assert derived(old, "escalations_90d") == {"escalations_90d": 0.0}
    assert derived(on_record, "escalations_90d") == {"escalations_90d": 0.0}


def test_escalations_are_missing_without_any_ticket_on_or_before_the_date():
    after = Activity(tickets=[(at(7, 1, 0), None, True)])

    assert derived(Activity(), "escalations_90d") == {"escalations_90d": None}
    assert derived(after, "escalations_90d") == {"escalations_90d": None}


OPPORTUNITIES = [
    ("Core", "new", "won", date(2023, 1, 1), date(2023, 2, 1)),
    ("Core", "renewal", "won", date(2024, 1, 1), date(2024, 1, 15)),
    ("Analytics", "cross_sell", "won", date(2024, 3, 1), date(2024, 4, 1)),
    # Won on D itself: counts.
    ("Core", "renewal", "won", date(2025, 1, 1), date(2025, 6, 30)),
    # Won after D: not a product yet, and still open at D.
    ("Mobile", "upsell", "won", date(2025, 6, 1), date(2025, 7, 1)),
    ("Mobile", "renewal", "lost", date(2025, 1, 1), date(2025, 3, 1)),
]


def test_product_count_counts_distinct_products_won_by_the_date():
    values = derived(Activity(opportunities=OPPORTUNITIES), "product_count")

    # Won on or before D: Core (twice), Analytics -> 2; Mobile won after D.
    assert values["product_count"] == 2.0


def test_renewal_count_counts_won_renewals_closed_by_the_date():
    values = derived(Activity(opportunities=OPPORTUNITIES), "renewal_count")

    # Won renewals: 2024-01-15 and 2025-06-30; the lost one does not count.
    assert values["renewal_count"] == 2.0


def test_opportunity_won_after_the_date_counts_as_open():
    values = derived(Activity(opportunities=OPPORTUNITIES), "lost_opportunity_share")

    # lost: Mobile renewal (2025-03-01) = 1; open at D: Mobile upsell won on
    # 2025-07-01 = 1; share 1 / (1 + 1) = 0.5
    assert values["lost_opportunity_share"] == pytest.approx(0.5)


def test_lost_share_counts_losses_in_the_last_365_days_over_lost_and_open():
    opportunities = [
        # Closed lost on D - 365 days (2024-06-30): outside (D-365d, D].
        ("A", "new", "lost", date(2024, 1, 1), date(2024, 6, 30)),
        ("B", "new", "lost", date(2024, 1, 1), date(2024, 7, 1)),  # inside
        ("C", "upsell", "open", date(2025, 5, 1), None),
        ("D", "upsell", "open", date(2025, 6, 30), None),
        # Created after D: not open at D.
        ("E", "upsell", "open", date(2025, 7, 1), None),
    ]

    values = derived(Activity(opportunities=opportunities), "lost_opportunity_share")

    # lost 1 (B), open 2 (C, D): 1 / (1 + 2) = 0.3333
    assert values["lost_opportunity_share"] == pytest.approx(1 / 3)


def test_lost_share_is_missing_when_nothing_is_lost_or_open():
    won_only = [("Core", "new", "won", date(2024, 1, 1), date(2024, 2, 1))]

    values = derived(
        Activity(opportunities=won_only),
        "product_count",
        "renewal_count",
        "lost_opportunity_share",
    )

    assert values == {
        "product_count": 1.0,
        "renewal_count": 0.0,
        "lost_opportunity_share": None,
    }


def test_opportunity_metrics_are_missing_without_opportunities_by_the_date():
    keys = ("product_count", "renewal_count", "lost_opportunity_share")
    later = [("Core", "new", "open", date(2025, 7, 1), None)]

    nothing = derived(Activity(), *keys)
    created_after = derived(Activity(opportunities=later), *keys)

    assert nothing == dict.fromkeys(keys)
    assert created_after == dict.fromkeys(keys)


def test_opportunities_on_record_give_zero_counts_not_missing():
    values = derived(Activity(any_opportunity=True), "product_count", "renewal_count")

    assert values == {"product_count": 0.0, "renewal_count": 0.0}


def test_days_since_interaction_counts_from_the_latest_one_by_the_date():
    interactions = [
        (at(6, 16, 15), 1),
        (at(6, 25, 9), 0),  # latest on or before D: 30 - 25 = 5 days
        (at(7, 1, 10), -1),  # after D: ignored
    ]

    values = derived(Activity(interactions=interactions), "days_since_interaction")

    assert values["days_since_interaction"] == 5.0


def test_days_since_interaction_reaches_back_past_the_90_day_window():
    # 2025-01-10 to 2025-06-30: 21 + 28 + 31 + 30 + 31 + 30 = 171 days
    activity = Activity(last_interaction_at=at(1, 10))

    values = derived(activity, "days_since_interaction", "interaction_sentiment")

    assert values == {"days_since_interaction": 171.0, "interaction_sentiment": None}


def test_days_since_interaction_is_zero_on_the_day_and_missing_without_any():
    today = Activity(interactions=[(at(6, 30, 23, 59), 1)])

    assert derived(today, "days_since_interaction") == {"days_since_interaction": 0.0}
    assert derived(Activity(), "days_since_interaction") == {
        "days_since_interaction": None
    }


def test_interaction_sentiment_is_the_mean_over_the_90_day_window():
    interactions = [
        (at(6, 1), 1),
        (at(5, 1), 1),
        (at(4, 2, 0), -1),  # first instant of the window
        (at(6, 30, 23), 0),
        (at(4, 1, 23), -1),  # before the window
        (at(7, 1, 0), -1),  # after D
    ]

    values = derived(Activity(interactions=interactions), "interaction_sentiment")

    # (1 + 1 - 1 + 0) / 4 = 0.25
    assert values["interaction_sentiment"] == pytest.approx(0.25)


def test_pulse_is_the_latest_rating_in_the_60_day_window():
    pulses = [
        (at(5, 10), 4),
        (at(6, 20), 2),  # latest inside
        (at(7, 1, 0), 5),  # after D
    ]

    assert derived(Activity(pulses=pulses), "pulse") == {"pulse": 2.0}


def test_pulse_is_missing_when_the_latest_is_older_than_60_days():
    # The window opens on 2025-05-02 00:00.
    just_out = Activity(pulses=[(at(5, 1, 23, 59), 3)])
    just_in = Activity(pulses=[(at(5, 2, 0), 3)])

    assert derived(just_out, "pulse") == {"pulse": None}
    assert derived(just_in, "pulse") == {"pulse": 3.0}


# --- 4-6. Components, replacement, coverage -------------------------------------


def test_component_renormalises_weights_over_present_measures():
    # active 0.65 -> 80 (weight 50), login 5 -> 30 (weight 20), feature missing:
    # (50x80 + 20x30) / 70 = 4600 / 70 = 65.714... -> 65.7
    readings = {
        "active_user_ratio": (0.65, date(2025, 6, 20)),
        "login_days_30d": (5.0, date(2025, 6, 20)),
    }

    result = score_customer(default_model(), D, readings, {})

    adoption = components_of(result)["adoption"]
    assert adoption.exact_score == pytest.approx(4600 / 70)
    assert adoption.score == 65.7
    assert adoption.status == "present"


def test_component_without_present_measures_is_missing():
    result = score_customer(default_model(), D, READINGS, NO_INTERACTIONS)

    for key in ("support", "purchasing", "interactions"):
        component = components_of(result)[key]
        assert component.status == "missing"
        assert component.score is None


def test_present_interactions_replace_support_and_take_its_weight():
    derived_values = SUPPORT | PURCHASING | INTERACTIONS

    result = score_customer(default_model(), D, READINGS, derived_values)

    # (40x71 + 35 x 522.5/7 + 25 x 63.25) / 100
    # = (2840 + 2612.5 + 1581.25) / 100 = 70.3375 -> 70.3
    assert result.exact_score == pytest.approx(70.3375)
    assert result.score == 70.3
    assert result.band == "healthy"
    assert result.coverage == 1.0

    components = components_of(result)
    assert components["interactions"].effective_weight == 35
    assert components["interactions"].score == 74.6  # 74.642857
    assert components["support"].status == "replaced"
    assert components["support"].effective_weight == 0
    assert components["support"].score == 67.9  # still explained: 67.942857
    assert components["purchasing"].score == 63.3  # 63.25 rounds half up


def test_missing_interactions_leave_support_counting():
    derived_values = SUPPORT | PURCHASING | NO_INTERACTIONS

    result = score_customer(default_model(), D, READINGS, derived_values)

    # (40x71 + 35 x 475.6/7 + 25 x 63.25) / 100
    # = (2840 + 2378 + 1581.25) / 100 = 67.9925 -> 68.0
    assert result.exact_score == pytest.approx(67.9925)
    assert result.score == 68.0
    assert result.band == "healthy"
    assert result.coverage == 1.0
    assert components_of(result)["support"].status == "present"
    assert components_of(result)["support"].effective_weight == 35


def test_interactions_take_supports_weight_when_support_is_missing():
    result = score_customer(default_model(), D, READINGS, INTERACTIONS)

    # adoption 40 + interactions 35 = 75: coverage 0.75;
    # (40x71 + 35 x 522.5/7) / 75 = (2840 + 2612.5) / 75 = 72.7
    assert result.coverage == 0.75
    assert result.exact_score == pytest.approx(72.7)
    assert result.score == 72.7


def test_coverage_below_minimum_leaves_the_customer_unscored():
    # Adoption alone: 40 / 100 = 0.4 < 0.5.
    result = score_customer(default_model(), D, READINGS, {})

    assert result.coverage == 0.4
    assert result.score is None
    assert result.band == "unscored"
    assert components_of(result)["adoption"].score == 71.0


def test_coverage_at_the_minimum_is_scored():
    # One of two 50-weight components present: coverage 0.5, not below 0.5.
    result = score_customer(single_measure_model(50, 50), D, {}, {"m0": 42.0})

    assert result.coverage == 0.5
    assert result.score == 42.0
    assert result.band == "neutral"


# --- 7-8. Rounding and bands ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (59.95, 60.0),
        (59.94, 59.9),
        (63.25, 63.3),
        (72.25, 72.3),
        (0.05, 0.1),
        (12.34, 12.3),
        (100.0, 100.0),
    ],
)
def test_round_half_up_to_one_decimal(value, expected):
    assert round_half_up(value) == expected


def test_overall_score_is_computed_from_unrounded_component_scores():
    # c0 10.06 (stored 10.1), c1 10.02 (stored 10.0). Unrounded: (10.06 +
    # 10.02) / 2 = 10.04 -> 10.0. From the rounded ones it would be 10.05 -> 10.1.
    result = score_customer(
        single_measure_model(50, 50), D, {}, {"m0": 10.06, "m1": 10.02}
    )

    assert [c.score for c in result.components] == [10.1, 10.0]
    assert result.exact_score == pytest.approx(10.04)
    assert result.score == 10.0


@pytest.mark.parametrize(
    ("exact", "score", "band"),
    [
        (59.96, 60.0, "healthy"),  # rounds up to the healthy limit
        (59.95, 60.0, "healthy"),  # exactly half: up
        (59.94, 59.9, "neutral"),
        (19.95, 20.0, "unhealthy"),
        (79.949, 79.9, "healthy"),
        (0.0, 0.0, "very_unhealthy"),
        (100.0, 100.0, "very_healthy"),
    ],
)
def test_band_comes_from_the_rounded_score(exact, score, band):
    result = score_customer(single_measure_model(100), D, {}, {"m0": exact})

    assert result.score == score
    assert result.band == band


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (None, "unscored"),
        (0.0, "very_unhealthy"),
        (19.9, "very_unhealthy"),
        (20.0, "unhealthy"),
        (39.9, "unhealthy"),
        (40.0, "neutral"),
        (60.0, "healthy"),
        (80.0, "very_healthy"),
    ],
)
def test_band_is_the_highest_whose_lower_limit_the_score_reaches(score, band):
    assert band_for(score) == band


def test_band_limits_follow_the_model():
    model = ModelSpec(
        components=single_measure_model(100).components,
        band_limits=(0.0, 30.0, 50.0, 70.0, 90.0),
    )

    result = score_customer(model, D, {}, {"m0": 65.0})

    assert result.band == "neutral"  # 50 <= 65 < 70


# --- 10. What changed ------------------------------------------------------------


def breakdown(readings: dict, derived_values: dict) -> dict:
    return score_customer(default_model(), D, readings, derived_values).breakdown()


def test_contributions_add_up_when_interactions_replace_support():
    then = breakdown(READINGS, SUPPORT | PURCHASING)
    now = breakdown(READINGS, SUPPORT | PURCHASING | INTERACTIONS)

    changes = contributions(now, then)

    # shares then: adoption 40x71/100 = 28.4, support 35 x 475.6/7 / 100 = 23.78,
    # purchasing 25x63.25/100 = 15.8125; now: adoption 28.4, support 0
    # (replaced), purchasing 15.8125, interactions 2612.5/100 = 26.125.
    assert changes == {
        "adoption": pytest.approx(0.0),
        "support": pytest.approx(-23.78),
        "purchasing": pytest.approx(0.0),
        "interactions": pytest.approx(26.125),
    }
    # 70.3375 - 67.9925 = 2.345 = 26.125 - 23.78
    assert sum(changes.values()) == pytest.approx(2.345)
    assert sum(changes.values()) == pytest.approx(
        now["exact_score"] - then["exact_score"]
    )


def test_contributions_add_up_when_components_appear_and_vanish():
    # then: adoption + support (75): (2840 + 2378) / 75 = 69.57333
    # now: adoption + purchasing (65): (2840 + 1581.25) / 65 = 68.01923
    then = breakdown(READINGS, SUPPORT)
    now = breakdown(READINGS, PURCHASING)

    changes = contributions(now, then)

    assert changes == {
        "adoption": pytest.approx(2840 / 65 - 2840 / 75),  # +5.825641
        "support": pytest.approx(-2378 / 75),  # -31.706667, vanished
        "purchasing": pytest.approx(1581.25 / 65),  # +24.326923, appeared
        "interactions": 0.0,
    }
    # 68.019231 - 69.573333 = -1.554103
    assert sum(changes.values()) == pytest.approx(4421.25 / 65 - 5218 / 75)
    assert sum(changes.values()) == pytest.approx(
        now["exact_score"] - then["exact_score"]
    )


def test_contributions_of_an_unchanged_breakdown_are_zero():
    same = breakdown(READINGS, SUPPORT | PURCHASING | INTERACTIONS)

    assert set(contributions(same, same).values()) == {0.0}
