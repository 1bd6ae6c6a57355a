"""Tuning the score safely: validate, clone, publish, what-if, overrides.

Writes go through the keyword-only services below, each in one transaction;
the admin, the commands and the customer page call them and hold no rules of
their own. What-if only reads: it never stores a snapshot, so nothing the
team sees moves while an admin tries a draft.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from health import queue
from health.backtest import (
    compute_scores,
    load_spec,
    model_customers,
)
from health.inputs import active_models
from health.models import (
    Component,
    Customer,
    Measure,
    Override,
    ScoreModel,
    ScoreSnapshot,
)
from health.scoring import BANDS, UNSCORED, validate_curve
from health.selectors import overrides_in_effect
from health.services import (
    forget_band_tallies,
    refresh_current_scores,
    stamp_overrides,
)
from workbench.access import may_work_on

logger = logging.getLogger(__name__)

DEFAULT_OVERRIDE_DAYS = 30
MAX_OVERRIDE_DAYS = 90


# --- Validation -----------------------------------------------------------------
# Plain functions over plain values, shared by the admin forms (which show the
# messages beside the fields) and by publish (which refuses an invalid draft).


def component_problems(
    components: Sequence[tuple[str, float, str | None]],
) -> list[str]:
    """Problems with a model's components, given as (key, weight, key of the
    replaced component or None)."""
    problems = []

    counted = sum(weight for _, weight, replaces in components if not replaces)
    if abs(counted - 100) > 1e-6:
        problems.append(
            "Component weights must sum to 100, not counting components that "
            "replace another (they take the replaced one's weight); "
            f"they sum to {counted:g}."
        )

    for key, weight, replaces in components:
        if replaces == key:
            problems.append(f"Component {key} cannot replace itself.")
        # A negative weight would pay points for a bad component and push
        # scores out of 0-100.
        if weight is None or weight < 0:
            problems.append(f"Component {key}: a weight cannot be negative.")

    replacements = Counter(replaces for _, _, replaces in components if replaces)
    for replaced, count in sorted(replacements.items()):
        if count > 1:
            problems.append(
                f"Component {replaced} is replaced by {count} components; "
                "at most one replacement per component."
            )
    return problems


def measure_weight_problems(weight: float | None) -> list[str]:
    if weight is None or weight <= 0:
        return ["Measure weights must be positive."]
    return []


def curve_problems(curve) -> list[str]:
    """Problems with a curve, as sentences."""
    if not isinstance(curve, list | tuple):
        return ["A curve is a list of [value, points] pairs."]
    problems = validate_curve(curve)
    return [p[0].upper() + p[1:] + "." for p in problems]


def model_problems(model: ScoreModel) -> list[str]:
    """Everything wrong with a stored model, in words. Two queries."""
    components = list(model.components.select_related("replaces"))
    problems = component_problems(
        [(c.key, c.weight, c.replaces.key if c.replaces else None) for c in components]
    )
    for measure in Measure.objects.filter(component__model=model).select_related(
        "component", "metric"
    ):
        where = f"{measure.component.key}.{measure.metric.key}: "
        problems += [where + p for p in measure_weight_problems(measure.weight)]
        problems += [where + p for p in curve_problems(measure.curve)]
    for component in components:
        if component.replaces and component.replaces.model_id != model.pk:
            problems.append(
                f"Component {component.key} replaces a component of another model."
            )
    return problems


# --- Versions -------------------------------------------------------------------


@transaction.atomic
def clone_model(*, model: ScoreModel, author) -> ScoreModel:
    """A new draft version of the model's name, with copies of its components
    and measures and replacements pointing at the copies."""
    newest = ScoreModel.objects.filter(name=model.name).aggregate(Max("version"))
    draft = ScoreModel.objects.create(
        name=model.name,
        version=(newest["version__max"] or 0) + 1,
        status=ScoreModel.Status.DRAFT,
        segment=model.segment,
        min_coverage=model.min_coverage,
        band_unhealthy=model.band_unhealthy,
        band_neutral=model.band_neutral,
        band_healthy=model.band_healthy,
        band_very_healthy=model.band_very_healthy,
        note=f"Cloned from {model.label}; say what changed and why.",
        author=author,
    )

    copies: dict[int, Component] = {}
    originals = list(model.components.order_by("id"))
    for original in originals:
        copies[original.pk] = Component.objects.create(
            model=draft,
            key=original.key,
            name=original.name,
            weight=original.weight,
        )
    # Replacements point inside a model, so they are remapped to the copies
    # once every copy exists.
    for original in originals:
        if original.replaces_id in copies:
            copy = copies[original.pk]
            copy.replaces = copies[original.replaces_id]
            copy.save(update_fields=["replaces"])

    Measure.objects.bulk_create(
        [
            Measure(
                component=copies[m.component_id],
                metric_id=m.metric_id,
                weight=m.weight,
                freshness_days=m.freshness_days,
                curve=m.curve,
                min_tenure_days=m.min_tenure_days,
            )
            for m in Measure.objects.filter(component__model=model).order_by("id")
        ]
    )
    logger.info("Cloned score model %s to draft %s", model.label, draft.label)
    return draft


def publish_model(*, model: ScoreModel, author, note: str) -> ScoreModel:
    """Make a draft the active model of its segment, retiring the one it
    replaces, in one transaction; then re-score everyone as of today.

    Raises ValidationError when the model is not a draft, is invalid, or the
    note is empty. Snapshots made by older versions stay as they were."""
    note = (note or "").strip()
    if not note:
        raise ValidationError("Say what changed and why before publishing.")

    with transaction.atomic():
        model = ScoreModel.objects.select_for_update().get(pk=model.pk)
        if model.status != ScoreModel.Status.DRAFT:
            raise ValidationError(
                f"Only a draft can be published; {model.label} is {model.status}."
            )
        problems = model_problems(model)
        if problems:
            raise ValidationError(problems)

        # Retire first: the one-active-per-segment constraint is checked row
        # by row, not at commit.
        retired = list(
            ScoreModel.objects.select_for_update().filter(
                status=ScoreModel.Status.ACTIVE, segment=model.segment
            )
        )
        ScoreModel.objects.filter(pk__in=[m.pk for m in retired]).update(
            status=ScoreModel.Status.RETIRED
        )
        model.status = ScoreModel.Status.ACTIVE
        model.published_at = timezone.now()
        model.author = author
        model.note = note
        model.save(update_fields=["status", "published_at", "author", "note"])
        # Snapshots the draft left while it was tried are official now.
        refresh_current_scores()
        forget_band_tallies()

        transaction.on_commit(_rescore_today)

    logger.info(
        "Published score model %s (retired: %s)",
        model.label,
        ", ".join(m.label for m in retired) or "none",
    )
    return model


def _rescore_today() -> None:
    from health import jobs

    jobs.start_score_all(as_of=jobs.today())


# --- What-if --------------------------------------------------------------------


@dataclass
class WhatIfRow:
    customer_id: int
    customer: str
    external_id: str
    current_model: str
    current_score: float | None
    current_band: str
    draft_score: float | None
    draft_band: str

    @property
    def delta(self) -> float | None:
        if self.current_score is None or self.draft_score is None:
            return None
        return round(self.draft_score - self.current_score, 1)

    def as_dict(self) -> dict:
        return {
            "customer_id": self.customer_id,
            "customer": self.customer,
            "external_id": self.external_id,
            "current_model": self.current_model,
            "current_score": self.current_score,
            "current_band": self.current_band,
            "draft_score": self.draft_score,
            "draft_band": self.draft_band,
            "delta": self.delta,
        }


@dataclass
class WhatIf:
    model: str
    as_of: date
    customers: int
    current_mix: dict[str, int]
    draft_mix: dict[str, int]
    changed: list[WhatIfRow] = field(default_factory=list)
    movers: list[WhatIfRow] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "as_of": self.as_of.isoformat(),
            "customers": self.customers,
            "current_mix": self.current_mix,
            "draft_mix": self.draft_mix,
            "changed_band": [r.as_dict() for r in self.changed],
            "biggest_movers": [r.as_dict() for r in self.movers],
        }


def band_mix(bands: Iterable[str]) -> dict[str, int]:
    counts = Counter(bands)
    return {band: counts.get(band, 0) for band in (*BANDS, UNSCORED)}


def what_if(*, model: ScoreModel, as_of: date, movers: int = 20) -> WhatIf:
    """Score the customers the model would score as of a date, side by side
    with what the active models give them (their stored snapshot of that
    date, else computed on the fly). Stores nothing."""
    rows = list(
        model_customers(model, as_of).values_list(
            "pk", "name", "external_id", "segment", "customer_since"
        )
    )
    draft = compute_scores(load_spec(model), [(r[0], r[4]) for r in rows], as_of)

    actives = active_models()
    current: dict[int, tuple[str, float | None, str]] = {}
    by_model: dict[int, list[tuple[int, date | None]]] = {}
    for customer_id, _, _, segment, since in rows:
        active = actives.get(segment) or actives.get("")
        if active is not None:
            by_model.setdefault(active.pk, []).append((customer_id, since))
    labels = {m.pk: m for m in actives.values()}
    for model_id, customers in by_model.items():
        active = labels[model_id]
        stored = {
            cid: (score, band)
            for cid, score, band in ScoreSnapshot.objects.filter(
                model=active, as_of=as_of
            ).values_list("customer_id", "score", "band")
        }
        missing = [c for c in customers if c[0] not in stored]
        computed = compute_scores(load_spec(active), missing, as_of)
        for customer_id, _ in customers:
            if customer_id in stored:
                score, band = stored[customer_id]
            else:
                score, band = computed[customer_id].score, computed[customer_id].band
            current[customer_id] = (active.label, score, band)

    table = [
        WhatIfRow(
            customer_id=customer_id,
            customer=name,
            external_id=external_id,
            current_model=current.get(customer_id, ("", None, UNSCORED))[0],
            current_score=current.get(customer_id, ("", None, UNSCORED))[1],
            current_band=current.get(customer_id, ("", None, UNSCORED))[2],
            draft_score=draft[customer_id].score,
            draft_band=draft[customer_id].band,
        )
        for customer_id, name, external_id, _, _ in rows
    ]
    moved = [r for r in table if r.delta]
    moved.sort(key=lambda r: (-abs(r.delta), r.customer))
    return WhatIf(
        model=model.label,
        as_of=as_of,
        customers=len(table),
        current_mix=band_mix(r.current_band for r in table),
        draft_mix=band_mix(r.draft_band for r in table),
        changed=sorted(
            (r for r in table if r.current_band != r.draft_band),
            key=lambda r: r.customer,
        ),
        movers=moved[:movers],
    )


# --- Overrides ------------------------------------------------------------------


def can_override(user, customer: Customer) -> bool:
    """Managers (and admins) on any customer; a CSM on their own: the same
    people who may work on the customer."""
    return may_work_on(user, customer)


def current_override(customer_id: int, as_of: date | None = None) -> Override | None:
    """The override in effect for the customer on the date (default today);
    an expired one has lapsed and is not returned. One query."""
    return overrides_in_effect(as_of or queue.today(), [customer_id]).first()


def override_band(
    *,
    customer: Customer,
    band: str,
    reason: str,
    by,
    days: int = DEFAULT_OVERRIDE_DAYS,
    today: date | None = None,
) -> Override:
    """Override a customer's band from today for ``days`` days (at most 90).

    An override already in effect ends today; both rows are kept for audit.
    Raises PermissionDenied for someone who may not override this customer
    and ValidationError for a bad band, reason or duration."""
    if not can_override(by, customer):
        raise PermissionDenied("You may not override this customer's band.")
    errors = {}
    if band not in BANDS:
        errors["band"] = "Choose one of the five bands."
    if not (reason or "").strip():
        errors["reason"] = "Give a reason for the override."
    if not 1 <= days <= MAX_OVERRIDE_DAYS:
        errors["days"] = f"An override lasts from 1 to {MAX_OVERRIDE_DAYS} days."
    if errors:
        raise ValidationError(errors)

    today = today or queue.today()
    with transaction.atomic():
        latest = (
            ScoreSnapshot.objects.filter(customer=customer, as_of__lte=today)
            .order_by("-as_of", "-computed_at")
            .values_list("band", flat=True)
            .first()
        )
        for previous in overrides_in_effect(today, [customer.pk]).select_for_update():
            previous.ended_on, previous.ended_by = today, by
            previous.save(update_fields=["ended_on", "ended_by"])

        override = Override.objects.create(
            customer=customer,
            band=band,
            computed_band=latest or "",
            reason=reason.strip(),
            created_by=by,
            starts_on=today,
            expires_on=today + timedelta(days=days),
        )
        stamp_overrides(customer_ids=[customer.pk], as_of=today)

    logger.info(
        "Band of customer %s overridden to %s until %s",
        customer.pk,
        band,
        override.expires_on,
    )
    return override


def end_override(*, override: Override, by, today: date | None = None) -> Override:
    """End an override early (from today on); the row stays for audit."""
    if not can_override(by, override.customer):
        raise PermissionDenied("You may not end this override.")
    today = today or queue.today()
    with transaction.atomic():
        override = Override.objects.select_for_update().get(pk=override.pk)
        if override.in_effect_on(today):
            override.ended_on, override.ended_by = today, by
            override.save(update_fields=["ended_on", "ended_by"])
            ScoreSnapshot.objects.filter(override=override, as_of__gte=today).update(
                overridden_band="", override=None
            )
    return override
