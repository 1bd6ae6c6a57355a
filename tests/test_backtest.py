"""The backtest of DESIGN's "Backtest, exactly", on histories small enough to
work out by hand.

The stored history (``history`` below) has month ends 2024-01-31 and
2024-02-29, a 90-day horizon, and these snapshots of the default model:

| customer | churned on | Jan 31                | Feb 29                |
|----------|------------|-----------------------|-----------------------|
| A        | 2024-03-15 | 85 v. healthy: churns | 30 unhealthy: churns  |
| B        | never      | 70 healthy            | 70 healthy            |
| C        | 2024-05-10 | 15 v. unhealthy: stays| 15 v. unhealthy: churns|
| D        | never      | 30 unhealthy          | unscored: left out    |
| E        | 2024-01-20 | no longer a customer: left out |              |

(C churns after Jan 31 + 90 days = Apr 30, but within Feb 29 + 90 days.)

Seven observations, three churned. Kept scores 70, 70, 15, 30; churned 85,
30, 15. Pairs (kept higher = 1, tie = 1/2): 70 beats 30 and 15 (twice: 4),
15 ties 15 (1/2), 30 ties 30 and beats 15 (3/2): 6 of 12, AUC 0.5.
Per band: very unhealthy 2 (1 churned), unhealthy 2 (1), healthy 2 (0), very
healthy 1 (1). The two lowest bands churn at 2/4 against 3/7 overall: lift
7/6. One false green: A at Jan 31.

DeLong's components, kept: B 2/3 and 2/3, C 1/6, D 1/2; churned: A 0 (85)
and 5/8 (30), C 7/8 (15). Summed per customer minus count x AUC: kept B
1/3, C -1/3, D 0; churned A -3/8, C 3/8. With 3 customers holding kept
observations, 2 holding churned ones and 4 in all: S10 = 3/(2*4) * 2/9 =
1/12, S01 = 2/(1*3) * 18/64 = 3/16, S11 = 4/3 * (-1/8) = -1/6, and the
variance is 1/12/4 + 3/16/3 - 2/6/12 = 1/18.
"""

import json
import math
from datetime import date

import pytest
from django.core.management import call_command

from health import backtest
from health.backtest import Observation
from health.models import Customer, Override, ScoreModel, ScoreSnapshot
from health.scoring import band_for
from health.tuning import clone_model
from tests.factories import customer_with_inputs

JAN, FEB = date(2024, 1, 31), date(2024, 2, 29)


# --- Arithmetic -----------------------------------------------------------------


def test_month_ends_runs_from_the_first_to_the_last_month_end_inside():
    assert backtest.month_ends(date(2024, 1, 15), date(2024, 4, 30)) == [
        date(2024, 1, 31),
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 4, 30),
    ]
    assert backtest.month_ends(date(2024, 2, 1), date(2024, 2, 28)) == []


def test_latest_complete_month_end_leaves_the_horizon_behind_today():
    # 2024-07-15 - 180 days = 2024-01-17: the month end before it.
    assert backtest.latest_complete_month_end(date(2024, 7, 15), 180) == date(
        2023, 12, 31
    )
    # 2024-07-29 - 180 days = 2024-01-31, itself a month end.
    assert backtest.latest_complete_month_end(date(2024, 7, 29), 180) == JAN


def test_month_ends_whose_horizon_reaches_past_today_are_left_out():
    kept, left_out = backtest.split_by_horizon([JAN, FEB], 90, date(2024, 5, 15))

    # Jan 31 + 90 = Apr 30, passed; Feb 29 + 90 = May 29, not yet.
    assert kept == [JAN]
    assert left_out == [FEB]


def test_churn_counts_only_inside_the_horizon_after_the_month_end():
    assert not backtest.churned_within(JAN, JAN, 90)
    assert backtest.churned_within(date(2024, 2, 1), JAN, 90)
    assert backtest.churned_within(date(2024, 4, 30), JAN, 90)
    assert not backtest.churned_within(date(2024, 5, 1), JAN, 90)
    assert not backtest.churned_within(None, JAN, 90)


def test_auc_counts_ties_one_half_and_gives_delongs_interval():
    # Kept 40, 60, 80 against churned 40, 20: five pairs won and one tie of
    # six, AUC 11/12. DeLong: the kept components are 3/4, 1, 1 (sample
    # variance 1/48), the churned ones 5/6 and 1 (variance 1/72); the
    # variance of the AUC is 1/48/3 + 1/72/2 = 1/72.
    auc, ci = backtest.auc_with_ci([40, 60, 80], [40, 20])

    assert auc == pytest.approx(11 / 12)
    assert ci[0] == pytest.approx(11 / 12 - backtest.Z_95 / math.sqrt(72))
    assert ci[1] == 1.0  # clipped


def test_clustered_interval_sums_delongs_components_per_customer():
    # Customer 1: kept 60, churned 40; customer 2: kept 50; customer 3:
    # churned 65, kept 70. Pairs won: 60>40, 50>40, 70>40, 70>65: AUC 4/6.
    # Kept components 1/2, 1/2, 1; churned ones 1 (for 40) and 1/3 (65).
    # Per customer, minus count x AUC: kept -1/6, -1/6, 1/3; churned 1/3,
    # 0, -1/3. S10 = 3/(2*3) * 6/36 = 1/12; S01 = 2/(1*2) * 2/9 = 2/9;
    # S11 = 3/2 * (-1/18 - 1/9) = -1/4. Variance 1/12/3 + 2/9/2 - 2/4/6
    # = 1/18.
    kept = [(1, 60), (2, 50), (3, 70)]
    churned = [(1, 40), (3, 65)]

    auc, ci = backtest.clustered_auc_with_ci(kept, churned)

    assert auc == pytest.approx(2 / 3)
    assert ci[0] == pytest.approx(2 / 3 - backtest.Z_95 / math.sqrt(18))
    assert ci[1] == 1.0


def test_clustered_interval_needs_two_customers_of_each_kind():
    auc, ci = backtest.clustered_auc_with_ci([(1, 60), (1, 70)], [(2, 40), (2, 50)])

    assert (auc, ci) == (1.0, None)


def test_auc_is_none_without_both_kinds_and_the_interval_needs_two_of_each():
    assert backtest.auc_with_ci([50, 60], []) == (None, None)
    assert backtest.auc_with_ci([], [50]) == (None, None)
    assert backtest.auc_with_ci([50, 60], [55]) == (0.5, None)


def test_an_interval_holding_one_half_is_no_better_than_chance():
    assert backtest.chance_verdict((0.45, 0.58)) == "no better than chance"
    assert backtest.chance_verdict((0.55, 0.70)) == "better than chance"
    assert backtest.chance_verdict((0.20, 0.40)) == "worse than chance"


def observation(score, band, churned, overridden=""):
    return Observation(
        customer_id=1,
        month_end=JAN,
        score=score,
        band=band,
        churned=churned,
        overridden_band=overridden,
    )


def test_summary_gives_churn_rate_per_band_lift_and_false_greens():
    observations = [
        observation(10, "very_unhealthy", True),
        observation(30, "unhealthy", False),
        observation(50, "neutral", False),
        observation(70, "healthy", True),
        observation(90, "very_healthy", False),
        observation(90, "very_healthy", False),
    ]

    summary = backtest.summarize(observations, model="M:1", horizon_days=180)

    assert summary["count_by_band"] == {
        "very_unhealthy": 1,
        "unhealthy": 1,
        "neutral": 1,
        "healthy": 1,
        "very_healthy": 2,
    }
    assert summary["churn_rate_by_band"] == {
        "very_unhealthy": 1.0,
        "unhealthy": 0.0,
        "neutral": 0.0,
        "healthy": 1.0,
        "very_healthy": 0.0,
    }
    # Lowest bands 1/2 against 2/6 overall.
    assert summary["lift_lowest_bands"] == pytest.approx(1.5)
    assert summary["false_greens"] == 1
    # Kept 30, 50, 90, 90 against churned 10, 70: 4 + 2 of 8 pairs.
    assert summary["auc"] == pytest.approx(6 / 8)


def test_an_override_is_right_when_it_points_the_way_things_went():
    observations = [
        # Lower than computed, and churned: right.
        observation(70, "healthy", True, overridden="unhealthy"),
        # Higher than computed, and stayed: right.
        observation(30, "unhealthy", False, overridden="neutral"),
        # Lower than computed, but stayed: wrong.
        observation(50, "neutral", False, overridden="very_unhealthy"),
        # The same band: nothing to judge.
        observation(50, "neutral", True, overridden="neutral"),
        observation(50, "neutral", True),
    ]

    assert backtest.override_record(observations) == {
        "overridden": 4,
        "same_band": 1,
        "right": 2,
        "wrong": 1,
        "share_right": 2 / 3,
    }


# --- Through the database -------------------------------------------------------


def snapshot(customer, model, as_of, score):
    ScoreSnapshot.objects.create(
        customer=customer,
        model=model,
        as_of=as_of,
        score=score,
        band=band_for(score),
        coverage=1.0 if score is not None else 0.2,
    )


@pytest.fixture
def history(db):
    model = ScoreModel.objects.get(name="Default", version=1)
    since = date(2023, 1, 1)

    def customer(key, churned_on=None):
        return Customer.objects.create(
            name=f"Customer {key}",
            external_id=key,
            customer_since=since,
            churned_on=churned_on,
        )

    a = customer("A", date(2024, 3, 15))
    b = customer("B")
    c = customer("C", date(2024, 5, 10))
    d = customer("D")
    e = customer("E", date(2024, 1, 20))
    for who, jan, feb in [(a, 85, 30), (b, 70, 70), (c, 15, 15), (d, 30, None)]:
        snapshot(who, model, JAN, jan)
        snapshot(who, model, FEB, feb)
    snapshot(e, model, JAN, 90)

    # A's override at Jan 31 said unhealthy (it was computed very healthy)
    # and A churned: right. B's at Feb 29 said very unhealthy and B stayed:
    # wrong. D's had expired by Jan 31.
    Override.objects.create(
        customer=a,
        band="unhealthy",
        reason="Champion left",
        starts_on=date(2024, 1, 15),
        expires_on=date(2024, 2, 14),
    )
    Override.objects.create(
        customer=b,
        band="very_unhealthy",
        reason="Budget cuts",
        starts_on=date(2024, 2, 20),
        expires_on=date(2024, 3, 20),
    )
    Override.objects.create(
        customer=d,
        band="very_healthy",
        reason="Big expansion",
        starts_on=date(2023, 12, 1),
        expires_on=date(2023, 12, 31),
    )
    return model


def test_backtest_of_a_hand_worked_history(history):
    result = backtest.run_backtest(
        history, start=JAN, end=FEB, horizon_days=90, today=date(2025, 1, 1)
    )

    assert result["model"] == "Default:1"
    assert result["horizon_days"] == 90
    assert result["month_ends"] == ["2024-01-31", "2024-02-29"]
    assert result["observations"] == 7
    assert result["churned"] == 3
    assert result["auc"] == pytest.approx(0.5)
    assert result["auc_ci_method"].startswith("DeLong, clustered by customer")
    # Clustered by customer (see the module docstring): variance 1/18.
    half_width = backtest.Z_95 / math.sqrt(18)
    assert result["auc_ci95"] == pytest.approx([0.5 - half_width, 0.5 + half_width])
    assert len(result["auc_ci95_independent"]) == 2
    assert result["verdict"] == "no better than chance"
    assert result["count_by_band"] == {
        "very_unhealthy": 2,
        "unhealthy": 2,
        "neutral": 0,
        "healthy": 2,
        "very_healthy": 1,
    }
    assert result["churn_rate_by_band"] == {
        "very_unhealthy": 0.5,
        "unhealthy": 0.5,
        "neutral": None,
        "healthy": 0.0,
        "very_healthy": 1.0,
    }
    assert result["lift_lowest_bands"] == pytest.approx(7 / 6)
    assert result["false_greens"] == 1
    assert result["false_green_list"][0]["external_id"] == "A"
    assert result["false_green_list"][0]["month_end"] == "2024-01-31"
    assert result["overrides"]["right"] == 1
    assert result["overrides"]["wrong"] == 1


def test_backtest_command_prints_the_table_and_writes_the_json(
    history, tmp_path, capsys
):
    out = tmp_path / "backtest.json"

    call_command(
        "backtest",
        "--model",
        "Default:1",
        "--from",
        "2024-01-01",
        "--to",
        "2024-02-29",
        "--horizon",
        "90",
        "--json",
        str(out),
    )

    printed = capsys.readouterr().out
    assert "Very unhealthy" in printed
    assert "no better than chance" in printed
    data = json.loads(out.read_text())
    for key in [
        "model",
        "horizon_days",
        "observations",
        "auc",
        "auc_ci95",
        "churn_rate_by_band",
        "count_by_band",
        "lift_lowest_bands",
        "false_greens",
    ]:
        assert key in data
    assert data["observations"] == 7
    assert data["false_greens"] == 1
    assert "unscored" not in data["count_by_band"]


def test_backtest_command_warns_about_month_ends_past_the_horizon(db, capsys):
    call_command("backtest", "--from", "2000-01-01", "--to", "2100-01-31")

    err = capsys.readouterr().err
    assert "left out" in err
    assert "reaches past today" in err


def test_backtest_compares_two_models_side_by_side(history, tmp_path, capsys):
    draft = clone_model(model=history, author=None)
    out = tmp_path / "compare.json"

    call_command(
        "backtest",
        "--model",
        "Default:1",
        "--compare",
        draft.label,
        "--from",
        "2024-01-01",
        "--to",
        "2024-02-29",
        "--horizon",
        "90",
        "--json",
        str(out),
    )

    printed = capsys.readouterr().out
    assert "Default:1 (active)" in printed
    assert "Default:2 (draft)" in printed
    data = json.loads(out.read_text())
    assert data["model"] == "Default:1"
    assert data["compare"]["model"] == "Default:2"
    # The draft is scored afresh from inputs, and these customers have none.
    assert data["compare"]["observations"] == 0


def test_draft_backtest_scores_on_the_fly_and_stores_nothing(db):
    draft = clone_model(model=ScoreModel.objects.get(name="Default"), author=None)
    for n in range(4):
        customer_with_inputs(n, JAN, variant=n + 3)
    Customer.objects.filter(external_id="C-00000").update(churned_on=date(2024, 3, 1))

    result = backtest.run_backtest(
        draft, start=JAN, end=JAN, horizon_days=90, today=date(2025, 1, 1)
    )

    assert result["observations"] == 4
    assert result["churned"] == 1
    assert ScoreSnapshot.objects.count() == 0
