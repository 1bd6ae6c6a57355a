"""Properties of the default model that must hold for any inputs: the score
stays on 0-100, and improving one measure never lowers it."""

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from health.defaults import DEFAULT_COMPONENTS, DERIVED, METRICS
from health.scoring import (
    BANDS,
    UNSCORED,
    ComponentSpec,
    MeasureSpec,
    ModelSpec,
    score_customer,
)

D = date(2025, 6, 30)
DERIVED_KEYS = {key for key, _, _, source, _ in METRICS if source == DERIVED}

# Enough examples to cover the replacement and coverage cases many times over
# while keeping the file well under a few seconds.
PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

MODEL = ModelSpec(
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
                    derived=metric in DERIVED_KEYS,
                )
                for metric, measure_weight, curve in measures
            ),
        )
        for key, name, weight, replaces, measures in DEFAULT_COMPONENTS
    )
)
MEASURES = {m.metric: m for c in MODEL.components for m in c.measures}

# Plausible ranges, stretched past each curve's ends so the flat parts are
# exercised too.
RANGES = {
    "active_user_ratio": (-0.5, 1.5),
    "feature_adoption_ratio": (-0.5, 1.5),
    "login_days_30d": (-5.0, 40.0),
    "nps": (-100.0, 100.0),
    "median_hours_to_close": (0.0, 1000.0),
    "escalations_90d": (0.0, 30.0),
    "product_count": (0.0, 10.0),
    "renewal_count": (0.0, 10.0),
    "lost_opportunity_share": (0.0, 1.0),
    "days_since_interaction": (0.0, 400.0),
    "interaction_sentiment": (-1.0, 1.0),
}


def value_of(metric: str) -> st.SearchStrategy[float]:
    """Mostly plausible values, sometimes any finite float at all."""
    low, high = RANGES[metric]
    return st.one_of(
        st.floats(low, high, allow_nan=False),
        st.floats(allow_nan=False, allow_infinity=False),
    )


@st.composite
def inputs(draw) -> tuple[dict, dict]:
    """Readings and derived values; each metric may be absent, and a reading
    may be fresh, stale or dated after the scoring date."""
    readings, derived = {}, {}
    for metric, measure in MEASURES.items():
        if not draw(st.booleans()):
            continue
        value = draw(value_of(metric))
        if measure.derived:
            derived[metric] = value
        else:
            age = draw(st.integers(-5, 200))
            readings[metric] = (value, D - timedelta(days=age))
    return readings, derived


@PROPERTY_SETTINGS
@given(inputs())
def test_score_stays_between_0_and_100_or_is_unscored(data):
    readings, derived = data

    result = score_customer(MODEL, D, readings, derived)

    assert 0.0 <= result.coverage <= 1.0
    if result.score is None:
        assert result.band == UNSCORED
    else:
        assert 0.0 <= result.score <= 100.0
        assert result.band in BANDS
        assert result.coverage >= MODEL.min_coverage
    for component in result.components:
        if component.score is not None:
            assert 0.0 <= component.score <= 100.0


def rises(metric: str) -> bool:
    """Whether the measure's curve rises (more is better) or falls."""
    curve = MEASURES[metric].curve
    return curve[-1][1] > curve[0][1]


@pytest.mark.parametrize(
    ("metric", "more_is_better"),
    [
        ("active_user_ratio", True),
        ("login_days_30d", True),
        ("escalations_90d", False),
        ("median_hours_to_close", False),
        ("days_since_interaction", False),
        ("lost_opportunity_share", False),
        ("renewal_count", True),
    ],
)
def test_default_curves_point_the_way_the_design_says(metric, more_is_better):
    assert rises(metric) is more_is_better


@PROPERTY_SETTINGS
@given(
    data=inputs(),
    metric=st.sampled_from(sorted(MEASURES)),
    step=st.floats(0.0, 500.0, allow_nan=False),
    choice=st.data(),
)
def test_score_never_falls_when_one_measure_improves(data, metric, step, choice):
    readings, derived = data
    value = choice.draw(value_of(metric), label="value")
    better = value + step if rises(metric) else value - step
    if MEASURES[metric].derived:
        before = score_customer(MODEL, D, readings, derived | {metric: value})
        after = score_customer(MODEL, D, readings, derived | {metric: better})
    else:
        observed_on = D - timedelta(days=choice.draw(st.integers(0, 89)))
        before = score_customer(
            MODEL, D, readings | {metric: (value, observed_on)}, derived
        )
        after = score_customer(
            MODEL, D, readings | {metric: (better, observed_on)}, derived
        )

    # The measure is present both times, so coverage and the band's
    # scoredness cannot change; only the score can, and only upwards.
    assert after.coverage == before.coverage
    assert (after.score is None) == (before.score is None)
    if before.score is not None:
        assert after.exact_score >= before.exact_score - 1e-9
        assert after.score >= before.score
