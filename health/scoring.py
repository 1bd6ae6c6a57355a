"""The health score's arithmetic, as DESIGN.md's "Scoring, exactly" states it.

Pure functions over plain values: nothing here touches the database, so the
rules can be read, tested and reused (scoring jobs, what-if, backtests) on
their own. ``health.inputs`` gathers the values; ``health.services`` stores
the results.

"As of D" means the end of day D in UTC. A window "(D - N days, D]" over
date-times is the half-open interval [midnight after D - N days, midnight
after D); over dates it is D - N < day <= D.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

BANDS = ("very_unhealthy", "unhealthy", "neutral", "healthy", "very_healthy")
UNSCORED = "unscored"
DEFAULT_BAND_LIMITS = (0.0, 20.0, 40.0, 60.0, 80.0)
DEFAULT_FRESHNESS_DAYS = 90
DEFAULT_MIN_COVERAGE = 0.5

DERIVED_METRICS = (
    "nps",
    "median_hours_to_close",
    "escalations_90d",
    "product_count",
    "renewal_count",
    "lost_opportunity_share",
    "days_since_interaction",
    "interaction_sentiment",
    "pulse",
)

# Float sums such as 0.1 + 0.2 land a hair off the decimal they stand for;
# without this slack a score of exactly 59.95 could round down to 59.9.
_ROUNDING_SLACK = 1e-9

Curve = tuple[tuple[float, float], ...]


# --- Curves, rounding, bands ------------------------------------------------


def curve_points(curve: Sequence[Sequence[float]], value: float) -> float:
    """Points for ``value``: linear between neighbours, flat beyond the ends."""
    first_value, first_points = curve[0]
    last_value, last_points = curve[-1]
    if value <= first_value:
        return float(first_points)
    if value >= last_value:
        return float(last_points)

    for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False):
        if value <= x1:
            return y0 + (y1 - y0) * (value - x0) / (x1 - x0)
    raise AssertionError("unreachable: value lies inside the curve")


def validate_curve(curve: Sequence[Sequence[float]]) -> list[str]:
    """Problems with a curve, in words; empty when it is fine."""
    problems = []
    if len(curve) < 2:
        problems.append("a curve needs at least two points")
    for point in curve:
        if len(point) != 2 or not all(isinstance(v, int | float) for v in point):
            problems.append(f"{point!r} is not a [value, points] pair of numbers")
            return problems
    values = [point[0] for point in curve]
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        problems.append("curve values must be strictly increasing")
    if any(not 0 <= point[1] <= 100 for point in curve):
        problems.append("curve points must lie between 0 and 100")
    return problems


def round_half_up(value: float, places: int = 1) -> float:
    scale = 10**places
    return math.floor(value * scale + 0.5 + _ROUNDING_SLACK) / scale


def band_for(score: float | None, limits: Sequence[float] = DEFAULT_BAND_LIMITS) -> str:
    """The band of a (rounded) score: the highest band whose lower limit it
    reaches. ``limits`` are the lower limits of the five bands, in order."""
    if score is None:
        return UNSCORED
    band = BANDS[0]
    for name, lower in zip(BANDS, limits, strict=True):
        if score >= lower:
            band = name
    return band


def band_rank(band: str) -> int | None:
    """0 for very unhealthy up to 4 for very healthy; None when unscored."""
    return BANDS.index(band) if band in BANDS else None


# --- Model description --------------------------------------------------------


@dataclass(frozen=True)
class MeasureSpec:
    metric: str
    weight: float
    curve: Curve
    derived: bool = False
    freshness_days: int = DEFAULT_FRESHNESS_DAYS
    # 0: always applies. Otherwise the measure is "not yet applicable" to a
    # customer whose tenure is shorter (no renewals judged in year one).
    min_tenure_days: int = 0


@dataclass(frozen=True)
class ComponentSpec:
    key: str
    name: str
    weight: float
    measures: tuple[MeasureSpec, ...]
    replaces: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    components: tuple[ComponentSpec, ...]
    min_coverage: float = DEFAULT_MIN_COVERAGE
    band_limits: tuple[float, ...] = DEFAULT_BAND_LIMITS
    id: int | None = None
    label: str = ""

    @property
    def imported_metrics(self) -> dict[str, int]:
        """Imported metric keys with the longest freshness any measure gives."""
        keys: dict[str, int] = {}
        for component in self.components:
            for measure in component.measures:
                if not measure.derived:
                    keys[measure.metric] = max(
                        keys.get(measure.metric, 0), measure.freshness_days
                    )
        return keys

    @property
    def derived_metrics(self) -> set[str]:
        return {m.metric for c in self.components for m in c.measures if m.derived}


# --- Inputs ---------------------------------------------------------------------


@dataclass
class Activity:
    """One customer's activity records that can matter as of a date.

    Callers may pass more records than the windows need (the functions below
    apply the windows exactly) but must pass every record inside them.
    ``any_ticket`` and ``any_opportunity`` say whether a record of that kind
    exists on or before the date even when none is in the lists.
    """

    tickets: list[tuple[datetime, datetime | None, bool]] = field(default_factory=list)
    any_ticket: bool = False
    any_opportunity: bool = False
    nps: list[tuple[str, int, datetime]] = field(default_factory=list)
    # (product, kind, stage, created_on, closed_on)
    opportunities: list[tuple[str, str, str, date, date | None]] = field(
        default_factory=list
    )
    interactions: list[tuple[datetime, int]] = field(default_factory=list)
    last_interaction_at: datetime | None = None
    pulses: list[tuple[datetime, int]] = field(default_factory=list)


def end_of_day(day: date) -> datetime:
    """The first instant after ``day`` (UTC): "as of D" means before this."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def window_start(day: date, days: int) -> datetime:
    """The first instant inside the window (D - days, D]."""
    return end_of_day(day) - timedelta(days=days)


def derive_metrics(
    as_of: date, activity: Activity, wanted: Iterable[str] = DERIVED_METRICS
) -> dict[str, float | None]:
    """Derived metric values as of ``as_of``; None where a metric is missing."""
    wanted = set(wanted)
    end = end_of_day(as_of)
    values: dict[str, float | None] = {}

    if wanted & {"median_hours_to_close", "escalations_90d"}:
        start = window_start(as_of, 90)
        tickets = [t for t in activity.tickets if t[0] < end]
        has_ticket = activity.any_ticket or bool(tickets)

        hours = [
            (closed - opened).total_seconds() / 3600
            for opened, closed, _ in tickets
            if closed is not None and start <= closed < end
        ]
        values["median_hours_to_close"] = statistics.median(hours) if hours else None

        escalated = sum(
            1 for opened, _, escalated in tickets if escalated and opened >= start
        )
        values["escalations_90d"] = float(escalated) if has_ticket else None

    if "nps" in wanted:
        values["nps"] = nps_score(as_of, activity.nps)

    if wanted & {"product_count", "renewal_count", "lost_opportunity_share"}:
        values.update(_opportunity_metrics(as_of, activity))

    if "days_since_interaction" in wanted:
        seen = [at for at, _ in activity.interactions if at < end]
        if activity.last_interaction_at and activity.last_interaction_at < end:
            seen.append(activity.last_interaction_at)
        values["days_since_interaction"] = (
            float((as_of - max(seen).astimezone(UTC).date()).days) if seen else None
        )

    if "interaction_sentiment" in wanted:
        start = window_start(as_of, 90)
        sentiments = [s for at, s in activity.interactions if start <= at < end]
        values["interaction_sentiment"] = (
            sum(sentiments) / len(sentiments) if sentiments else None
        )

    if "pulse" in wanted:
        start = window_start(as_of, 60)
        pulses = [(at, rating) for at, rating in activity.pulses if start <= at < end]
        values["pulse"] = float(max(pulses)[1]) if pulses else None

    return {key: values.get(key) for key in wanted if key in DERIVED_METRICS}


def nps_score(
    as_of: date, responses: Iterable[tuple[str, int, datetime]]
) -> float | None:
    """100 x (promoters - detractors) / count over the latest response of each
    contact in (D - 180 days, D]; None with fewer than three."""
    start, end = window_start(as_of, 180), end_of_day(as_of)
    latest: dict[str, tuple[datetime, int]] = {}
    for contact, score, at in responses:
        if start <= at < end and (contact not in latest or at > latest[contact][0]):
            latest[contact] = (at, score)

    if len(latest) < 3:
        return None
    scores = [score for _, score in latest.values()]
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return 100 * (promoters - detractors) / len(scores)


def _opportunity_metrics(as_of: date, activity: Activity) -> dict[str, float | None]:
    opportunities = [o for o in activity.opportunities if o[3] <= as_of]
    if not opportunities and not activity.any_opportunity:
        return {
            "product_count": None,
            "renewal_count": None,
            "lost_opportunity_share": None,
        }

    def closed_by(closed_on: date | None) -> bool:
        return closed_on is not None and closed_on <= as_of

    won = [o for o in opportunities if o[2] == "won" and closed_by(o[4])]
    products = {product for product, *_ in won}
    renewals = sum(1 for o in won if o[1] == "renewal")

    year_ago = as_of - timedelta(days=365)
    lost = sum(
        1
        for o in opportunities
        if o[2] == "lost" and closed_by(o[4]) and o[4] > year_ago
    )
    still_open = sum(1 for o in opportunities if not closed_by(o[4]))
    share = lost / (lost + still_open) if lost + still_open else None

    return {
        "product_count": float(len(products)),
        "renewal_count": float(renewals),
        "lost_opportunity_share": share,
    }


# --- Scoring ----------------------------------------------------------------


NOT_APPLICABLE = "not_applicable"


def tenure_on(customer_since: date | None, as_of: date) -> int | None:
    """Whole days a customer has been one as of the date; None when unknown."""
    if customer_since is None:
        return None
    return (as_of - customer_since).days


@dataclass
class MeasureResult:
    metric: str
    weight: float
    status: str  # fresh, stale, missing or not_applicable
    value: float | None = None
    points: float | None = None
    observed_on: date | None = None

    def as_dict(self) -> dict:
        return {
            "metric": self.metric,
            "weight": self.weight,
            "status": self.status,
            "value": self.value,
            "points": None if self.points is None else round_half_up(self.points, 2),
            "observed_on": self.observed_on.isoformat() if self.observed_on else None,
            **({"note": "not yet applicable"} if self.status == NOT_APPLICABLE else {}),
        }


@dataclass
class ComponentResult:
    key: str
    name: str
    weight: float
    measures: list[MeasureResult]
    exact_score: float | None = None
    # present, missing, or replaced (present, but left out for its replacement)
    status: str = "missing"
    effective_weight: float = 0.0
    replaces: str | None = None

    @property
    def score(self) -> float | None:
        return None if self.exact_score is None else round_half_up(self.exact_score)

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "name": self.name,
            "weight": self.weight,
            "effective_weight": self.effective_weight,
            "status": self.status,
            "replaces": self.replaces,
            "score": self.score,
            "exact_score": self.exact_score,
            "measures": [m.as_dict() for m in self.measures],
        }


@dataclass
class ScoreResult:
    score: float | None
    exact_score: float | None
    band: str
    coverage: float
    components: list[ComponentResult]

    def breakdown(self) -> dict:
        return {
            "exact_score": self.exact_score,
            "components": [c.as_dict() for c in self.components],
        }


def _score_measure(
    measure: MeasureSpec,
    as_of: date,
    readings: Mapping[str, tuple[float, date]],
    derived: Mapping[str, float | None],
    tenure: int | None = None,
) -> MeasureResult:
    result = MeasureResult(measure.metric, measure.weight, "missing")

    # Unknown tenure counts as long enough: a customer whose start date is
    # unknown is scored like any other (see DESIGN's "a customer as of D").
    if tenure is not None and tenure < measure.min_tenure_days:
        result.status = NOT_APPLICABLE
        return result

    if measure.derived:
        value = derived.get(measure.metric)
        if value is None:
            return result
        result.value, result.status = value, "fresh"
    else:
        reading = readings.get(measure.metric)
        if reading is None:
            return result
        result.value, result.observed_on = reading
        if reading[1] > as_of:
            result.value, result.observed_on = None, None
            return result
        if reading[1] <= as_of - timedelta(days=measure.freshness_days):
            result.status = "stale"
            return result
        result.status = "fresh"

    result.points = curve_points(measure.curve, result.value)
    return result


def score_customer(
    model: ModelSpec,
    as_of: date,
    readings: Mapping[str, tuple[float, date]],
    derived: Mapping[str, float | None],
    tenure_days: int | None = None,
) -> ScoreResult:
    """Score one customer as of ``as_of``.

    ``readings`` maps an imported metric to its latest reading on or before
    the date as (value, observed on); ``derived`` maps a derived metric to its
    value (None when missing), as ``derive_metrics`` computes it.
    ``tenure_days`` is how long the customer has been one (None: unknown);
    measures with a longer minimum tenure are left out like missing ones.
    """
    components: dict[str, ComponentResult] = {}
    for spec in model.components:
        measures = [
            _score_measure(m, as_of, readings, derived, tenure_days)
            for m in spec.measures
        ]
        result = ComponentResult(
            spec.key, spec.name, spec.weight, measures, replaces=spec.replaces
        )
        present = [m for m in measures if m.status == "fresh"]
        total = sum(m.weight for m in present)
        if present and total > 0:
            result.exact_score = sum(m.weight * m.points for m in present) / total
            result.status = "present"
            result.effective_weight = spec.weight
        components[spec.key] = result

    # A present replacement takes the replaced component's weight and pushes
    # it out; a missing one leaves the replaced component counting as usual.
    for result in components.values():
        if result.replaces is None or result.replaces not in components:
            continue
        replaced = components[result.replaces]
        if result.status == "present":
            result.effective_weight = replaced.weight
            if replaced.status == "present":
                replaced.status = "replaced"
            replaced.effective_weight = 0.0

    counted = [c for c in components.values() if c.status == "present"]
    total_weight = sum(c.effective_weight for c in counted)
    coverage = total_weight / 100

    exact = None
    if counted and total_weight > 0:
        exact = sum(c.effective_weight * c.exact_score for c in counted) / total_weight

    if exact is None or coverage < model.min_coverage - _ROUNDING_SLACK:
        return ScoreResult(
            None, exact, UNSCORED, round(coverage, 4), list(components.values())
        )

    score = round_half_up(exact)
    return ScoreResult(
        score,
        exact,
        band_for(score, model.band_limits),
        round(coverage, 4),
        list(components.values()),
    )


# --- Change over time ---------------------------------------------------------


def contributions(now: Mapping, then: Mapping) -> dict[str, float]:
    """Each component's contribution to the change between two breakdowns.

    A share is weight x score / the total weight present that day (zero when
    the component was not counted); a contribution is its share now minus its
    share then. The contributions add up to the change of the unrounded score.
    """

    def shares(breakdown: Mapping) -> dict[str, float]:
        counted = [
            c for c in breakdown.get("components", []) if c["status"] == "present"
        ]
        total = sum(c["effective_weight"] for c in counted)
        if not total:
            return {}
        return {
            c["key"]: c["effective_weight"] * c["exact_score"] / total for c in counted
        }

    now_shares, then_shares = shares(now), shares(then)
    keys = [c["key"] for c in now.get("components", [])]
    keys += [c["key"] for c in then.get("components", []) if c["key"] not in keys]
    return {k: now_shares.get(k, 0.0) - then_shares.get(k, 0.0) for k in keys}
