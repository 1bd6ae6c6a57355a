"""Did a model's score foretell churn? DESIGN's "Backtest, exactly".

The first half is arithmetic over plain values (no ORM), so every figure can
be checked by hand: observations in, AUC, churn rate per band, lift and false
greens out. The second half gathers the observations from the database: a
model's stored snapshot at each month end when it has one, else a score
computed on the fly and never stored.

The AUC's 95 % interval is DeLong's (DeLong, DeLong and Clarke-Pearson,
Biometrics 1988), computed from midranks so that ties count one half exactly
as in the AUC itself, with its components summed per customer (Obuchowski,
Biometrics 1997): one customer seen at many month ends is one cluster of
correlated observations, and treating them as independent would make the
interval far too narrow. The interval for independent observations is
reported beside it.
"""

from __future__ import annotations

import calendar
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from health.inputs import (
    active_models,
    gather_activity,
    gather_readings,
    load_model_spec,
    scorable_customers,
)
from health.models import ScoreModel, ScoreSnapshot
from health.scoring import (
    BANDS,
    ModelSpec,
    ScoreResult,
    band_rank,
    derive_metrics,
    score_customer,
    tenure_on,
)
from health.selectors import overrides_in_effect

logger = logging.getLogger(__name__)

DEFAULT_HORIZON_DAYS = 180
LOWEST_BANDS = BANDS[:2]
HIGHEST_BANDS = BANDS[-2:]
# The two-sided 95 % quantile of the standard normal distribution.
Z_95 = 1.959963984540054
CI_METHOD = "DeLong, clustered by customer (Obuchowski 1997)"
CHUNK_SIZE = 1000


# --- Arithmetic ---------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """One customer at one month end, scored, and whether it churned after."""

    customer_id: int
    month_end: date
    score: float
    band: str
    churned: bool
    customer: str = ""
    external_id: str = ""
    churned_on: date | None = None
    # The band of an override in effect at the month end; "" when none.
    overridden_band: str = ""

    def as_dict(self) -> dict:
        return {
            "customer_id": self.customer_id,
            "customer": self.customer,
            "external_id": self.external_id,
            "month_end": self.month_end.isoformat(),
            "score": self.score,
            "band": self.band,
            "churned_on": self.churned_on.isoformat() if self.churned_on else None,
        }


def month_ends(start: date, end: date) -> list[date]:
    """The last days of the months from ``start`` to ``end``, both included."""
    days = []
    year, month = start.year, start.month
    while True:
        last = date(year, month, calendar.monthrange(year, month)[1])
        if last > end:
            return days
        if last >= start:
            days.append(last)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def latest_complete_month_end(today: date, horizon_days: int) -> date:
    """The latest month end whose horizon has fully passed by ``today``."""
    limit = today - timedelta(days=horizon_days)
    if (limit + timedelta(days=1)).day == 1:
        return limit
    return limit.replace(day=1) - timedelta(days=1)


def split_by_horizon(
    days: Sequence[date], horizon_days: int, today: date
) -> tuple[list[date], list[date]]:
    """(month ends whose horizon has passed, month ends whose horizon reaches
    past today): the outcome of the second kind is not known yet."""
    kept = [d for d in days if d + timedelta(days=horizon_days) <= today]
    left_out = [d for d in days if d + timedelta(days=horizon_days) > today]
    return kept, left_out


def churned_within(churned_on: date | None, month_end: date, horizon_days: int) -> bool:
    """Whether a churn date falls in (M, M + H]."""
    if churned_on is None:
        return False
    return month_end < churned_on <= month_end + timedelta(days=horizon_days)


def midranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _components(
    kept: Sequence[float], churned: Sequence[float]
) -> tuple[float, list[float], list[float]]:
    """The AUC and DeLong's structural components: for each kept score the
    share of churned scores below it, for each churned score the share of
    kept scores above it (ties one half). O(N log N) through midranks."""
    m, n = len(kept), len(churned)
    combined = midranks([*kept, *churned])
    within_kept = midranks(kept)
    within_churned = midranks(churned)
    auc = (sum(combined[:m]) - m * (m + 1) / 2) / (m * n)
    v10 = [(combined[i] - within_kept[i]) / n for i in range(m)]
    v01 = [1 - (combined[m + j] - within_churned[j]) / m for j in range(n)]
    return auc, v10, v01


def _interval(auc: float, variance: float) -> tuple[float, float]:
    se = math.sqrt(max(variance, 0.0))
    return max(0.0, auc - Z_95 * se), min(1.0, auc + Z_95 * se)


def auc_with_ci(
    kept: Sequence[float], churned: Sequence[float]
) -> tuple[float | None, tuple[float, float] | None]:
    """The AUC (the probability that a kept customer scores higher than a
    churned one, ties one half) and DeLong's 95 % interval for independent
    observations, clipped to [0, 1].

    None for the AUC when either kind is absent; None for the interval when
    either kind has fewer than two observations (its variance is unknown).
    """
    m, n = len(kept), len(churned)
    if not m or not n:
        return None, None
    auc, v10, v01 = _components(kept, churned)
    if m < 2 or n < 2:
        return auc, None

    s10 = sum((v - auc) ** 2 for v in v10) / (m - 1)
    s01 = sum((v - auc) ** 2 for v in v01) / (n - 1)
    return auc, _interval(auc, s10 / m + s01 / n)


def clustered_auc_with_ci(
    kept: Sequence[tuple[object, float]], churned: Sequence[tuple[object, float]]
) -> tuple[float | None, tuple[float, float] | None]:
    """The AUC and its 95 % interval when observations come in clusters:
    (cluster, score) pairs, a cluster being one customer seen at many month
    ends. DeLong's components are summed per cluster (Obuchowski, Biometrics
    1997), so a customer observed eighteen times weighs as the correlated
    evidence it is, not as eighteen independent ones.

    None for the interval when fewer than two clusters hold each kind.
    """
    m, n = len(kept), len(churned)
    if not m or not n:
        return None, None
    auc, v10, v01 = _components([s for _, s in kept], [s for _, s in churned])

    clusters: dict[object, list[float]] = {}
    for (cluster, _), v in zip(kept, v10, strict=True):
        entry = clusters.setdefault(cluster, [0.0, 0, 0.0, 0])
        entry[0] += v
        entry[1] += 1
    for (cluster, _), v in zip(churned, v01, strict=True):
        entry = clusters.setdefault(cluster, [0.0, 0, 0.0, 0])
        entry[2] += v
        entry[3] += 1

    with_kept = sum(1 for e in clusters.values() if e[1])
    with_churned = sum(1 for e in clusters.values() if e[3])
    if with_kept < 2 or with_churned < 2:
        return auc, None

    d10 = [e[0] - e[1] * auc for e in clusters.values()]
    d01 = [e[2] - e[3] * auc for e in clusters.values()]
    total = len(clusters)
    s10 = with_kept / ((with_kept - 1) * m) * sum(d * d for d in d10)
    s01 = with_churned / ((with_churned - 1) * n) * sum(d * d for d in d01)
    s11 = total / (total - 1) * sum(a * b for a, b in zip(d10, d01, strict=True))
    return auc, _interval(auc, s10 / m + s01 / n + 2 * s11 / (m * n))


def chance_verdict(ci: tuple[float, float] | None) -> str:
    if ci is None:
        return "too few observations to say"
    low, high = ci
    if low <= 0.5 <= high:
        return "no better than chance"
    return "better than chance" if low > 0.5 else "worse than chance"


def count_by_band(observations: Iterable[Observation]) -> dict[str, int]:
    counts = Counter(o.band for o in observations)
    return {band: counts.get(band, 0) for band in BANDS}


def churn_rate_by_band(observations: Sequence[Observation]) -> dict[str, float | None]:
    """Churned / observations per band; None for a band with none."""
    totals = count_by_band(observations)
    churned = Counter(o.band for o in observations if o.churned)
    return {
        band: churned.get(band, 0) / totals[band] if totals[band] else None
        for band in BANDS
    }


def churn_rate(observations: Sequence[Observation]) -> float | None:
    if not observations:
        return None
    return sum(1 for o in observations if o.churned) / len(observations)


def lift_lowest_bands(observations: Sequence[Observation]) -> float | None:
    """The churn rate of the two lowest bands over the churn rate of all;
    None when either rate is undefined or the overall rate is zero."""
    lowest = churn_rate([o for o in observations if o.band in LOWEST_BANDS])
    overall = churn_rate(observations)
    if lowest is None or not overall:
        return None
    return lowest / overall


def false_greens(observations: Iterable[Observation]) -> list[Observation]:
    """Observations in the two highest bands that churned."""
    return [o for o in observations if o.churned and o.band in HIGHEST_BANDS]


def override_record(observations: Iterable[Observation]) -> dict:
    """How often overrides were right: an override whose band differs from
    the computed one was right when it pointed the way things went (lower
    for a customer that churned, higher for one that stayed)."""
    right = wrong = same = 0
    for o in observations:
        if not o.overridden_band:
            continue
        step = band_rank(o.overridden_band) - band_rank(o.band)
        if step == 0:
            same += 1
        elif (step < 0) == o.churned:
            right += 1
        else:
            wrong += 1
    judged = right + wrong
    return {
        "overridden": right + wrong + same,
        "same_band": same,
        "right": right,
        "wrong": wrong,
        "share_right": right / judged if judged else None,
    }


def summarize(
    observations: Sequence[Observation],
    *,
    model: str,
    horizon_days: int,
    month_ends_used: Sequence[date] = (),
    month_ends_left_out: Sequence[date] = (),
) -> dict:
    """The backtest's figures, ready for JSON."""
    kept = [(o.customer_id, o.score) for o in observations if not o.churned]
    churned = [(o.customer_id, o.score) for o in observations if o.churned]
    auc, ci = clustered_auc_with_ci(kept, churned)
    _, independent_ci = auc_with_ci([s for _, s in kept], [s for _, s in churned])
    greens = false_greens(observations)
    return {
        "model": model,
        "horizon_days": horizon_days,
        "month_ends": [d.isoformat() for d in month_ends_used],
        "month_ends_left_out": [d.isoformat() for d in month_ends_left_out],
        "observations": len(observations),
        "churned": len(churned),
        "churn_rate": churn_rate(observations),
        "auc": auc,
        "auc_ci95": list(ci) if ci else None,
        "auc_ci_method": CI_METHOD,
        "auc_ci95_independent": list(independent_ci) if independent_ci else None,
        "verdict": chance_verdict(ci) if auc is not None else "no AUC",
        "count_by_band": count_by_band(observations),
        "churn_rate_by_band": churn_rate_by_band(observations),
        "lift_lowest_bands": lift_lowest_bands(observations),
        "false_greens": len(greens),
        "false_green_list": [o.as_dict() for o in greens],
        "overrides": override_record(observations),
    }


# --- Gathering ------------------------------------------------------------------


def parse_model_label(label: str) -> ScoreModel:
    """The model named ``NAME:VERSION``; a bare name means its newest
    version. Raises ScoreModel.DoesNotExist."""
    name, _, version = label.rpartition(":")
    if name and version.isdigit():
        return ScoreModel.objects.get(name=name, version=int(version))
    model = ScoreModel.objects.filter(name=label).order_by("-version").first()
    if model is None:
        raise ScoreModel.DoesNotExist(f"no score model {label!r}")
    return model


def default_active_model() -> ScoreModel:
    model = active_models().get("")
    if model is None:
        raise ScoreModel.DoesNotExist("no active default score model")
    return model


def load_spec(model: ScoreModel) -> ModelSpec:
    """The model's plain description, each measure with its minimum tenure.
    Two queries."""
    return load_model_spec(model)


def model_customers(model: ScoreModel, as_of: date):
    """The customers the model scores as of the date: its segment's, or, for
    a default model, those of every segment without an active model of its
    own."""
    customers = scorable_customers(as_of)
    if model.segment:
        return customers.filter(segment=model.segment)
    own = [segment for segment in active_models() if segment]
    return customers.exclude(segment__in=own)


def compute_scores(
    spec: ModelSpec,
    customers: Sequence[tuple[int, date | None]],
    as_of: date,
) -> dict[int, ScoreResult]:
    """Score (customer id, customer since) pairs under a model as of a date,
    storing nothing. About ten queries per thousand customers."""
    results: dict[int, ScoreResult] = {}
    for start in range(0, len(customers), CHUNK_SIZE):
        chunk = customers[start : start + CHUNK_SIZE]
        ids = [customer_id for customer_id, _ in chunk]
        readings = gather_readings(ids, as_of, spec.imported_metrics)
        activity = gather_activity(ids, as_of, spec.derived_metrics)
        for customer_id, since in chunk:
            derived = derive_metrics(as_of, activity[customer_id], spec.derived_metrics)
            results[customer_id] = score_customer(
                spec,
                as_of,
                readings[customer_id],
                derived,
                tenure_days=tenure_on(since, as_of),
            )
    return results


def override_bands(as_of: date) -> dict[int, str]:
    """Each customer's overridden band on the date (the newest override)."""
    bands: dict[int, str] = {}
    for customer_id, band in overrides_in_effect(as_of).values_list(
        "customer_id", "band"
    ):
        bands.setdefault(customer_id, band)
    return bands


def gather_observations(
    model: ScoreModel, days: Sequence[date], horizon_days: int
) -> list[Observation]:
    """Observations of the model at each month end. A frozen model's stored
    snapshots are used where they exist; a draft is always computed afresh,
    since it may have changed since anything was stored. Stores nothing."""
    spec = load_spec(model)
    observations: list[Observation] = []

    for month_end in days:
        rows = list(
            model_customers(model, month_end).values_list(
                "pk", "name", "external_id", "customer_since", "churned_on"
            )
        )
        stored: dict[int, tuple[float | None, str]] = {}
        if model.is_frozen:
            stored = {
                cid: (score, band)
                for cid, score, band in ScoreSnapshot.objects.filter(
                    model=model, as_of=month_end
                ).values_list("customer_id", "score", "band")
            }
        missing = [(r[0], r[3]) for r in rows if r[0] not in stored]
        computed = compute_scores(spec, missing, month_end)
        overridden = override_bands(month_end)

        for customer_id, name, external_id, _, churned_on in rows:
            if customer_id in stored:
                score, band = stored[customer_id]
            else:
                result = computed[customer_id]
                score, band = result.score, result.band
            if score is None:
                continue
            observations.append(
                Observation(
                    customer_id=customer_id,
                    month_end=month_end,
                    score=score,
                    band=band,
                    churned=churned_within(churned_on, month_end, horizon_days),
                    customer=name,
                    external_id=external_id,
                    churned_on=churned_on,
                    overridden_band=overridden.get(customer_id, ""),
                )
            )
        logger.info(
            "Backtest %s at %s: %d customers, %d stored, %d computed",
            model.label,
            month_end,
            len(rows),
            len(rows) - len(missing),
            len(missing),
        )
    return observations


def default_start() -> date | None:
    """The earliest date anything was scored (by any model): the history
    the workbench holds. One query."""
    return (
        ScoreSnapshot.objects.order_by("as_of").values_list("as_of", flat=True).first()
    )


def run_backtest(
    model: ScoreModel,
    *,
    start: date | None,
    end: date | None,
    horizon_days: int,
    today: date,
) -> dict:
    """The backtest of one model from ``start`` to ``end`` (month ends). A
    missing ``end`` is the latest month end whose horizon has passed; a
    missing ``start`` the first month end of the scored history. Month ends whose
    horizon reaches past today are left out, and listed."""
    end = end or latest_complete_month_end(today, horizon_days)
    start = start or default_start() or end
    kept, left_out = split_by_horizon(month_ends(start, end), horizon_days, today)
    if left_out:
        logger.warning(
            "Backtest %s: %d month ends left out, their %d-day horizon reaches past %s",
            model.label,
            len(left_out),
            horizon_days,
            today,
        )
    observations = gather_observations(model, kept, horizon_days)
    result = summarize(
        observations,
        model=model.label,
        horizon_days=horizon_days,
        month_ends_used=kept,
        month_ends_left_out=left_out,
    )
    result["model_status"] = model.status
    result["segment"] = model.segment
    return result
