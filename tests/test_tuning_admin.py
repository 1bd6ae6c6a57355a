"""Tuning score models in the admin: validation messages, clone to draft,
publish, and read-only active and retired models."""

from datetime import date, timedelta

import pytest
from django.urls import reverse

from health import jobs, tuning
from health.models import Component, Measure, ScoreModel, ScoreSnapshot
from health.services import score_customers
from tests.factories import customer_with_inputs


@pytest.fixture
def default_model(db) -> ScoreModel:
    return ScoreModel.objects.get(name="Default", version=1)


@pytest.fixture
def draft(default_model) -> ScoreModel:
    return tuning.clone_model(model=default_model, author=None)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def model_form(model: ScoreModel, **changes) -> dict:
    """The change form of a model as the admin would post it back, with
    ``changes`` as {component key: {field: value}}."""
    data = {
        "name": model.name,
        "version": model.version,
        "segment": model.segment,
        "min_coverage": model.min_coverage,
        "band_unhealthy": model.band_unhealthy,
        "band_neutral": model.band_neutral,
        "band_healthy": model.band_healthy,
        "band_very_healthy": model.band_very_healthy,
        "note": model.note,
    }
    components = list(model.components.order_by("id"))
    data.update(
        {
            "components-TOTAL_FORMS": len(components),
            "components-INITIAL_FORMS": len(components),
            "components-MIN_NUM_FORMS": 0,
            "components-MAX_NUM_FORMS": 1000,
        }
    )
    for i, component in enumerate(components):
        row = {
            "id": component.pk,
            "model": model.pk,
            "key": component.key,
            "name": component.name,
            "weight": component.weight,
            "replaces": component.replaces_id or "",
        }
        row.update(changes.get(component.key, {}))
        data.update({f"components-{i}-{k}": v for k, v in row.items()})
    return data


def component_form(component: Component, **changes) -> dict:
    """A component's page with its measures, ``changes`` as {metric key:
    {field: value}}."""
    data = {
        "model": component.model_id,
        "key": component.key,
        "name": component.name,
        "weight": component.weight,
        "replaces": component.replaces_id or "",
    }
    measures = list(component.measures.select_related("metric").order_by("id"))
    data.update(
        {
            "measures-TOTAL_FORMS": len(measures),
            "measures-INITIAL_FORMS": len(measures),
            "measures-MIN_NUM_FORMS": 0,
            "measures-MAX_NUM_FORMS": 1000,
        }
    )
    for i, measure in enumerate(measures):
        row = {
            "id": measure.pk,
            "component": component.pk,
            "metric": measure.metric_id,
            "weight": measure.weight,
            "freshness_days": measure.freshness_days,
            "min_tenure_days": measure.min_tenure_days,
            "curve": str(measure.curve),
        }
        row.update(changes.get(measure.metric.key, {}))
        data.update({f"measures-{i}-{k}": v for k, v in row.items()})
    return data


def change_url(model: ScoreModel) -> str:
    return reverse("admin:health_scoremodel_change", args=[model.pk])


def component_url(component: Component) -> str:
    return reverse("admin:health_component_change", args=[component.pk])


# --- Validation -------------------------------------------------------------------


def test_component_weights_must_sum_to_100(admin_client, draft):
    response = admin_client.post(
        change_url(draft), model_form(draft, adoption={"weight": 50})
    )

    assert response.status_code == 200
    assert (
        "Component weights must sum to 100, not counting components that "
        "replace another (they take the replaced one&#x27;s weight); they sum "
        "to 110."
    ) in response.content.decode()
    assert draft.components.get(key="adoption").weight == 40


def test_a_component_weight_cannot_be_negative(admin_client, draft):
    # They sum to 100: -10 + 15 + 95.
    response = admin_client.post(
        change_url(draft),
        model_form(
            draft,
            adoption={"weight": -10},
            support={"weight": 15},
            purchasing={"weight": 95},
        ),
    )

    assert response.status_code == 200
    assert "Component adoption: a weight cannot be negative." in (
        response.content.decode()
    )
    assert draft.components.get(key="adoption").weight == 40


def test_publish_refuses_a_draft_with_a_negative_weight(
    admin_client, draft, default_model
):
    draft.components.filter(key="adoption").update(weight=-10)
    draft.components.filter(key="purchasing").update(weight=85)

    response = admin_client.post(
        reverse("admin:health_scoremodel_publish", args=[draft.pk]),
        {"note": "Adoption counts against."},
    )

    assert response.status_code == 200
    assert "a weight cannot be negative" in response.content.decode()
    assert ScoreModel.objects.get(status="active") == default_model


def test_a_replacing_components_weight_is_not_counted(admin_client, draft):
    response = admin_client.post(
        change_url(draft),
        model_form(
            draft,
            adoption={"weight": 30},
            purchasing={"weight": 35},
            interactions={"weight": 35},
        ),
    )

    assert response.status_code == 302
    weights = dict(draft.components.values_list("key", "weight"))
    assert weights == {
        "adoption": 30,
        "support": 35,
        "purchasing": 35,
        "interactions": 35,
    }


def test_a_component_is_replaced_at_most_once(admin_client, draft):
    support = draft.components.get(key="support")

    response = admin_client.post(
        change_url(draft),
        model_form(draft, purchasing={"replaces": support.pk, "weight": 0},
                   adoption={"weight": 65}),
    )  # fmt: skip

    assert response.status_code == 200
    assert (
        "Component support is replaced by 2 components; at most one "
        "replacement per component."
    ) in response.content.decode()
    assert draft.components.get(key="purchasing").replaces is None


def test_a_component_may_only_replace_one_of_its_own_model(
    admin_client, draft, default_model
):
    elsewhere = default_model.components.get(key="support")

    response = admin_client.post(
        change_url(draft), model_form(draft, purchasing={"replaces": elsewhere.pk})
    )

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_measure_weights_must_be_positive(admin_client, draft):
    adoption = draft.components.get(key="adoption")

    response = admin_client.post(
        component_url(adoption),
        component_form(adoption, active_user_ratio={"weight": 0}),
    )

    assert response.status_code == 200
    assert "Measure weights must be positive." in response.content.decode()
    assert adoption.measures.get(metric__key="active_user_ratio").weight == 50


@pytest.mark.parametrize(
    ("curve", "message"),
    [
        ("[[0, 0]]", "A curve needs at least two points."),
        ("[[0, 0], [0.5, 60], [0.5, 99]]", "Curve values must be strictly increasing."),
        ("[[0.8, 100], [0, 0]]", "Curve values must be strictly increasing."),
    ],
)  # fmt: skip
def test_curves_need_two_points_with_strictly_increasing_values(
    admin_client, draft, curve, message
):
    adoption = draft.components.get(key="adoption")

    response = admin_client.post(
        component_url(adoption),
        component_form(adoption, active_user_ratio={"curve": curve}),
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    measure = adoption.measures.get(metric__key="active_user_ratio")
    assert measure.curve == [[0, 0], [0.5, 60], [0.8, 100]]


def test_a_valid_measure_change_is_saved(admin_client, draft):
    adoption = draft.components.get(key="adoption")

    response = admin_client.post(
        component_url(adoption),
        component_form(
            adoption,
            active_user_ratio={"curve": "[[0, 0], [0.4, 50], [0.9, 100]]"},
            login_days_30d={"weight": 5, "min_tenure_days": 30},
        ),
    )

    assert response.status_code == 302
    measures = {m.metric.key: m for m in adoption.measures.select_related("metric")}
    assert measures["active_user_ratio"].curve == [[0, 0], [0.4, 50], [0.9, 100]]
    assert (
        measures["login_days_30d"].weight,
        measures["login_days_30d"].min_tenure_days,
    ) == (5, 30)


def test_a_component_page_checks_weights_against_its_siblings(admin_client, draft):
    adoption = draft.components.get(key="adoption")

    response = admin_client.post(
        component_url(adoption), component_form(adoption) | {"weight": 45}
    )

    assert response.status_code == 200
    assert "they sum to 105." in response.content.decode()


# --- Clone ------------------------------------------------------------------------


def test_clone_to_draft_copies_components_measures_and_replacements(
    admin_client, admin_user, default_model
):
    response = admin_client.post(
        reverse("admin:health_scoremodel_clone", args=[default_model.pk])
    )

    draft = ScoreModel.objects.get(name="Default", version=2)
    assert response.status_code == 302
    assert response["Location"] == change_url(draft)
    assert draft.status == "draft"
    assert draft.author == admin_user
    assert "Cloned from Default:1" in draft.note
    assert list(draft.components.values_list("key", "weight")) == list(
        default_model.components.order_by("id").values_list("key", "weight")
    )
    interactions = draft.components.get(key="interactions")
    assert interactions.replaces == draft.components.get(key="support")
    assert Measure.objects.filter(component__model=draft).count() == 11
    copied = Measure.objects.get(
        component__model=draft, metric__key="median_hours_to_close"
    )
    assert copied.curve == [[4, 100], [24, 70], [72, 30], [168, 0]]
    # The original is untouched.
    assert default_model.components.count() == 4
    assert Measure.objects.filter(component__model=default_model).count() == 11


def test_clone_takes_the_next_free_version(draft, default_model):
    again = tuning.clone_model(model=default_model, author=None)

    assert (draft.version, again.version) == (2, 3)


def test_clone_action_on_the_list(admin_client, default_model):
    response = admin_client.post(
        reverse("admin:health_scoremodel_changelist"),
        {"action": "clone_to_draft", "_selected_action": [default_model.pk]},
    )

    assert response.status_code == 302
    assert ScoreModel.objects.filter(name="Default", version=2, status="draft").exists()


# --- Publish ----------------------------------------------------------------------


def test_publish_activates_the_draft_retires_the_old_and_rescores_today(
    admin_client, admin_user, default_model, draft, django_capture_on_commit_callbacks
):
    today = jobs.today()
    customer = customer_with_inputs(1, today, variant=6)
    score_customers(customer_ids=[customer.pk], as_of=today - timedelta(days=1))
    old = ScoreSnapshot.objects.get()
    old_values = (old.model_id, old.score, old.band, old.breakdown)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:health_scoremodel_publish", args=[draft.pk]),
            {"note": "Same weights; testing the release path."},
        )

    assert response.status_code == 302
    draft.refresh_from_db()
    default_model.refresh_from_db()
    assert (draft.status, default_model.status) == ("active", "retired")
    assert draft.author == admin_user
    assert draft.note == "Same weights; testing the release path."
    assert draft.published_at is not None
    assert ScoreSnapshot.objects.filter(
        customer=customer, model=draft, as_of=today
    ).exists()
    old.refresh_from_db()
    assert (old.model_id, old.score, old.band, old.breakdown) == old_values


def test_publish_needs_a_note(admin_client, draft, default_model):
    response = admin_client.post(
        reverse("admin:health_scoremodel_publish", args=[draft.pk]), {"note": " "}
    )

    assert response.status_code == 200
    assert "Say what changed and why before publishing." in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_publish_refuses_an_invalid_draft(admin_client, draft, default_model):
    draft.components.filter(key="adoption").update(weight=10)

    response = admin_client.post(
        reverse("admin:health_scoremodel_publish", args=[draft.pk]),
        {"note": "Less adoption."},
    )

    assert response.status_code == 200
    assert "they sum to 70." in response.content.decode()
    assert ScoreModel.objects.get(status="active") == default_model


def test_publish_is_one_transaction(draft, default_model, monkeypatch):
    def broken_save(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ScoreModel, "save", broken_save)

    with pytest.raises(RuntimeError):
        tuning.publish_model(model=draft, author=None, note="Try")

    # The old model was retired before the draft failed to save; the
    # rollback undid that too.
    assert ScoreModel.objects.get(status="active") == default_model
    assert ScoreModel.objects.get(pk=draft.pk).status == "draft"


def test_publish_of_a_segment_model_leaves_the_default_active(draft, default_model):
    draft.segment = "Enterprise"
    draft.save()

    tuning.publish_model(model=draft, author=None, note="A model of its own.")

    actives = dict(
        ScoreModel.objects.filter(status="active").values_list("segment", "name")
    )
    assert actives == {"": "Default", "Enterprise": "Default"}


# --- Frozen -----------------------------------------------------------------------


def test_active_and_retired_models_are_read_only(admin_client, default_model, draft):
    tuning.publish_model(model=draft, author=None, note="Swap.")
    default_model.refresh_from_db()

    for model in [default_model, draft]:
        page = admin_client.get(change_url(model))
        assert page.status_code == 200
        assert "clone it to a draft" in page.content.decode().lower()
        assert 'name="_save"' not in page.content.decode()

        response = admin_client.post(
            change_url(model), model_form(model, adoption={"weight": 50})
        )
        assert response.status_code == 403

        component = model.components.get(key="adoption")
        response = admin_client.post(
            component_url(component),
            component_form(component, active_user_ratio={"weight": 1}),
        )
        assert response.status_code == 403
        assert component.measures.get(metric__key="active_user_ratio").weight == 50

        publish = reverse("admin:health_scoremodel_publish", args=[model.pk])
        assert admin_client.post(publish, {"note": "again"}).status_code == 403


def test_a_draft_is_editable(admin_client, draft):
    page = admin_client.get(change_url(draft))

    assert page.status_code == 200
    assert 'name="_save"' in page.content.decode()
    assert reverse("admin:health_scoremodel_publish", args=[draft.pk]) in (
        page.content.decode()
    )


# --- Pages ------------------------------------------------------------------------


def test_what_if_and_backtest_pages_show_their_tables(
    admin_client, draft, default_model
):
    as_of = date(2024, 1, 31)
    customer_with_inputs(1, as_of, variant=4)

    whatif = admin_client.get(
        reverse("admin:health_scoremodel_whatif", args=[draft.pk]),
        {"as_of": "2024-01-31"},
    )
    backtest = admin_client.get(
        reverse("admin:health_scoremodel_backtest", args=[draft.pk]),
        {"from": "2024-01-01", "to": "2024-01-31", "horizon": "90",
         "compare": default_model.pk},
    )  # fmt: skip

    assert whatif.status_code == 200
    assert "Band mix" in whatif.content.decode()
    assert backtest.status_code == 200
    content = backtest.content.decode()
    assert "Default:2 (draft)" in content
    assert "Default:1 (active)" in content
    assert "<svg" in content


def test_tuning_pages_are_for_admins_only(client, csm, draft):
    client.force_login(csm)

    response = client.get(reverse("admin:health_scoremodel_backtest", args=[draft.pk]))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_overrides_are_listed_for_audit_and_cannot_be_edited(
    admin_client, manager, default_model
):
    customer = customer_with_inputs(1, date(2025, 6, 30))
    override = tuning.override_band(
        customer=customer,
        band="unhealthy",
        reason="Champion left",
        by=manager,
        today=date(2025, 6, 30),
    )

    listing = admin_client.get(reverse("admin:health_override_changelist"))
    change = admin_client.post(
        reverse("admin:health_override_change", args=[override.pk]),
        {"band": "healthy"},
    )
    delete = admin_client.post(
        reverse("admin:health_override_delete", args=[override.pk]), {"post": "yes"}
    )

    assert listing.status_code == 200
    assert customer.name in listing.content.decode()
    assert (change.status_code, delete.status_code) == (403, 403)
    override.refresh_from_db()
    assert override.band == "unhealthy"
