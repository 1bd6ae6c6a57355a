"""Tuning services: what-if, overrides, tenure, and the medium-term draft."""

from datetime import date, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command

from health import tuning
from health.backtest import load_spec
from health.models import Customer, Override, ScoreModel, ScoreSnapshot
from health.scoring import (
    ComponentSpec,
    MeasureSpec,
    ModelSpec,
    score_customer,
)
from health.services import score_customers
from tests.factories import customer_with_inputs

D = date(2025, 6, 30)


@pytest.fixture
def default_model(db) -> ScoreModel:
    return ScoreModel.objects.get(name="Default", version=1)


@pytest.fixture
def book(db) -> list[Customer]:
    """Six customers with inputs, scored by the active model as of D."""
    customers = [customer_with_inputs(n, D, variant=n * 2 + 1) for n in range(6)]
    score_customers(customer_ids=[c.pk for c in customers], as_of=D)
    return customers


def snapshot_rows():
    return list(
        ScoreSnapshot.objects.order_by("pk").values_list(
            "pk",
            "customer_id",
            "model_id",
            "as_of",
            "score",
            "band",
            "coverage",
            "breakdown",
            "computed_at",
        )
    )


# --- What-if ----------------------------------------------------------------------


def test_what_if_never_changes_an_active_snapshot(book, default_model):
    draft = tuning.clone_model(model=default_model, author=None)
    # Adoption only: every customer moves.
    draft.components.filter(key="adoption").update(weight=100)
    draft.components.exclude(key="adoption").update(weight=0)
    before = snapshot_rows()

    result = tuning.what_if(model=draft, as_of=D)
    call_command("whatif", "--model", draft.label, "--as-of", D.isoformat())

    assert snapshot_rows() == before
    assert result.customers == 6
    assert result.movers
    assert sum(result.draft_mix.values()) == 6


def test_what_if_of_an_unchanged_clone_moves_nobody(book, default_model):
    draft = tuning.clone_model(model=default_model, author=None)

    result = tuning.what_if(model=draft, as_of=D)

    assert result.current_mix == result.draft_mix
    assert result.changed == []
    assert result.movers == []


def test_what_if_lists_band_changes_with_both_scores(book, default_model):
    draft = tuning.clone_model(model=default_model, author=None)
    # Every band starts 30 points higher: scores stay, bands fall.
    draft.band_unhealthy, draft.band_neutral = 50, 70
    draft.band_healthy, draft.band_very_healthy = 90, 99
    draft.save()
    stored = dict(ScoreSnapshot.objects.values_list("customer_id", "score"))

    result = tuning.what_if(model=draft, as_of=D)

    assert result.changed
    for row in result.changed:
        assert row.current_model == "Default:1"
        assert row.current_score == stored[row.customer_id]
        assert row.draft_score == row.current_score
        assert row.current_band != row.draft_band


def test_whatif_command_writes_json(book, default_model, tmp_path):
    draft = tuning.clone_model(model=default_model, author=None)
    out = tmp_path / "whatif.json"

    call_command(
        "whatif", "--model", draft.label, "--as-of", "2025-06-30", "--json", str(out)
    )

    assert '"customers": 6' in out.read_text()


# --- Overrides --------------------------------------------------------------------


@pytest.fixture
def account(csm) -> Customer:
    customer = customer_with_inputs(1, D, variant=7)
    customer.owner = csm
    customer.save()
    score_customers(customer_ids=[customer.pk], as_of=D)
    return customer


def test_a_csm_overrides_the_band_of_their_customer(account, csm):
    computed = ScoreSnapshot.objects.get(customer=account).band

    override = tuning.override_band(
        customer=account,
        band="unhealthy",
        reason="Champion left last week",
        by=csm,
        today=D,
    )

    assert override.expires_on == D + timedelta(days=30)
    assert override.computed_band == computed
    snapshot = ScoreSnapshot.objects.get(customer=account)
    assert (snapshot.band, snapshot.overridden_band) == (computed, "unhealthy")
    assert snapshot.effective_band == "unhealthy"
    assert snapshot.override == override


def test_a_csm_may_not_override_another_csms_customer(account, other_csm):
    with pytest.raises(PermissionDenied):
        tuning.override_band(
            customer=account, band="healthy", reason="?", by=other_csm, today=D
        )

    assert not Override.objects.exists()


def test_a_manager_may_override_any_customer(account, manager):
    override = tuning.override_band(
        customer=account, band="healthy", reason="Renewal signed", by=manager, days=90
    )

    assert override.expires_on - override.starts_on == timedelta(days=90)


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"days": 91}, "days"), ({"days": 0}, "days"), ({"reason": " "}, "reason"),
     ({"band": "unscored"}, "band")],
)  # fmt: skip
def test_an_override_needs_a_band_a_reason_and_at_most_90_days(
    account, manager, changes, field
):
    arguments = {"band": "neutral", "reason": "Because", "days": 30} | changes

    with pytest.raises(ValidationError) as error:
        tuning.override_band(customer=account, by=manager, today=D, **arguments)

    assert field in error.value.message_dict
    assert not Override.objects.exists()


def test_an_expired_override_lapses_by_itself_and_is_kept(account, csm):
    override = tuning.override_band(
        customer=account, band="unhealthy", reason="Worried", by=csm, today=D
    )
    later = D + timedelta(days=30)
    score_customers(customer_ids=[account.pk], as_of=later)

    assert tuning.current_override(account.pk, D + timedelta(days=29)) == override
    assert tuning.current_override(account.pk, later) is None
    assert tuning.stamp_overrides(customer_ids=[account.pk], as_of=later) == 0
    assert ScoreSnapshot.objects.get(as_of=later).effective_band == (
        ScoreSnapshot.objects.get(as_of=later).band
    )
    assert Override.objects.count() == 1


def test_a_new_override_ends_the_one_in_effect(account, csm, manager):
    first = tuning.override_band(
        customer=account, band="unhealthy", reason="Worried", by=csm, today=D
    )
    second = tuning.override_band(
        customer=account, band="healthy", reason="Resolved", by=manager, today=D
    )

    first.refresh_from_db()
    assert (first.ended_on, first.ended_by) == (D, manager)
    assert tuning.current_override(account.pk, D) == second
    assert ScoreSnapshot.objects.get(customer=account).overridden_band == "healthy"


def test_ending_an_override_clears_it_from_todays_snapshot(account, csm):
    override = tuning.override_band(
        customer=account, band="unhealthy", reason="Worried", by=csm, today=D
    )

    tuning.end_override(override=override, by=csm, today=D)

    assert tuning.current_override(account.pk, D) is None
    assert ScoreSnapshot.objects.get(customer=account).overridden_band == ""
    assert Override.objects.get().ended_on == D


def test_rescoring_keeps_the_override_beside_the_computed_band(account, csm):
    computed = ScoreSnapshot.objects.get(customer=account).band
    tuning.override_band(
        customer=account, band="very_healthy", reason="Expansion", by=csm, today=D
    )

    score_customers(customer_ids=[account.pk], as_of=D)

    snapshot = ScoreSnapshot.objects.get(customer=account)
    assert (snapshot.band, snapshot.overridden_band) == (computed, "very_healthy")


# --- Tenure -----------------------------------------------------------------------


def tenure_model(min_tenure_days: int) -> ModelSpec:
    return ModelSpec(
        components=(
            ComponentSpec(
                key="purchasing",
                name="Purchasing",
                weight=100,
                measures=(
                    MeasureSpec("product_count", 50, ((1, 40), (2, 70)), True),
                    MeasureSpec(
                        "renewal_count",
                        50,
                        ((0, 0), (1, 100)),
                        True,
                        min_tenure_days=min_tenure_days,
                    ),
                ),
            ),
        )
    )


def test_a_measure_is_not_yet_applicable_before_its_minimum_tenure():
    derived = {"product_count": 2.0, "renewal_count": 0.0}

    young = score_customer(tenure_model(365), D, {}, derived, tenure_days=100)
    old = score_customer(tenure_model(365), D, {}, derived, tenure_days=400)

    # Young: renewals left out, product count alone gives 70. Old: both
    # count, (70 + 0) / 2 = 35.
    assert young.score == 70.0
    assert old.score == 35.0
    measure = young.breakdown()["components"][0]["measures"][1]
    assert measure["status"] == "not_applicable"
    assert measure["note"] == "not yet applicable"


def test_unknown_tenure_and_the_old_signature_count_every_measure():
    derived = {"product_count": 2.0, "renewal_count": 0.0}

    assert score_customer(tenure_model(365), D, {}, derived).score == 35.0
    assert score_customer(tenure_model(365), D, {}, derived, None).score == 35.0


def test_the_spec_of_a_stored_model_carries_minimum_tenures(db):
    model = ScoreModel.objects.get(name="Medium-term")

    spec = load_spec(model)

    tenures = {
        (c.key, m.metric): m.min_tenure_days
        for c in spec.components
        for m in c.measures
    }
    assert tenures[("purchasing", "renewal_count")] == 365
    assert tenures[("adoption", "active_user_ratio")] == 0


# --- The medium-term draft --------------------------------------------------------


def test_the_medium_term_draft_ships_valid_beside_the_default(db):
    model = ScoreModel.objects.get(name="Medium-term", version=1)

    assert model.status == "draft"
    assert tuning.model_problems(model) == []
    weights = dict(model.components.values_list("key", "weight"))
    assert weights == {
        "adoption": 35,
        "support": 20,
        "purchasing": 20,
        "nps": 15,
        "pulse": 10,
        "interactions": 0,
    }
    assert model.components.get(key="interactions").replaces.key == "support"
    assert list(
        model.components.get(key="pulse").measures.values_list("metric__key", flat=True)
    ) == ["pulse"]
    assert ScoreModel.objects.get(status="active").name == "Default"
