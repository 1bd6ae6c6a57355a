"""Set-based reads that feed the scoring arithmetic.

Every function here costs a fixed number of queries whatever the number of
customers it is given, so a chunk of a thousand customers costs what a chunk
of ten does (tests pin the count).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta

from django.db import connection
from django.db.models import BooleanField, Max, OuterRef, Q, Subquery
from django.db.models.expressions import RawSQL

from health.models import (
    Customer,
    Interaction,
    Measure,
    Metric,
    MetricReading,
    NpsResponse,
    Opportunity,
    Pulse,
    ScoreModel,
    Ticket,
)
from health.scoring import (
    Activity,
    ComponentSpec,
    MeasureSpec,
    ModelSpec,
    end_of_day,
    window_start,
)


def load_model_spec(model: ScoreModel) -> ModelSpec:
    """The plain description of a stored model. Two queries."""
    components = list(model.components.select_related("replaces").order_by("id"))
    measures = defaultdict(list)
    for measure in (
        Measure.objects.filter(component__model=model)
        .select_related("metric")
        .order_by("id")
    ):
        measures[measure.component_id].append(
            MeasureSpec(
                metric=measure.metric.key,
                weight=measure.weight,
                curve=tuple((float(v), float(p)) for v, p in measure.curve),
                derived=measure.metric.source == "derived",
                freshness_days=measure.freshness_days,
                min_tenure_days=measure.min_tenure_days,
            )
        )

    return ModelSpec(
        components=tuple(
            ComponentSpec(
                key=c.key,
                name=c.name,
                weight=c.weight,
                measures=tuple(measures[c.id]),
                replaces=c.replaces.key if c.replaces else None,
            )
            for c in components
        ),
        min_coverage=model.min_coverage,
        band_limits=(
            0.0,
            model.band_unhealthy,
            model.band_neutral,
            model.band_healthy,
            model.band_very_healthy,
        ),
        id=model.pk,
        label=model.label,
    )


def active_models() -> dict[str, ScoreModel]:
    """Active models by segment; the default one under "". One query."""
    return {
        m.segment: m for m in ScoreModel.objects.filter(status=ScoreModel.Status.ACTIVE)
    }


def scorable_customers(as_of: date):
    """Customers who were customers as of the date: started on or before it
    (or unknown) and not churned on or before it."""
    return Customer.objects.filter(
        Q(customer_since__isnull=True) | Q(customer_since__lte=as_of),
        Q(churned_on__isnull=True) | Q(churned_on__gt=as_of),
    )


def id_array(ids: Sequence[int]) -> str:
    """Ids as one PostgreSQL array literal: a single parameter, instead of a
    thousand that the client has to quote and the server to parse."""
    return "{" + ",".join(str(int(i)) for i in ids) + "}"


def customer_in(model, ids: Sequence[int], field: str = "customer_id") -> Q | RawSQL:
    """``field IN ids`` (by default the customer foreign key); on PostgreSQL
    as ``= ANY`` of one array parameter, which saves a tenth of a chunk's
    time (client-side quoting of a thousand ids in each query)."""
    if connection.vendor != "postgresql":
        return Q(**{f"{field}__in": ids})
    column = model._meta.get_field(field).column
    sql = f'"{model._meta.db_table}"."{column}" = ANY(%s::bigint[])'
    # Table and column names come from the model; the ids are a parameter.
    return RawSQL(  # noqa: S611
        sql,
        (id_array(ids),),
        output_field=BooleanField(),
    )


def gather_readings(
    customer_ids: Sequence[int], as_of: date, metrics: dict[str, int]
) -> dict[int, dict[str, tuple[float | None, date]]]:
    """The latest reading per customer and metric on or before the date.

    Inside the metric's longest freshness window it comes with its value;
    a reading older than that, within a year, comes as (None, observed on),
    so the breakdown can say "stale since" instead of "missing". Two
    queries: the metric ids, then one row per customer and metric."""
    result: dict[int, dict[str, tuple[float | None, date]]] = defaultdict(dict)
    if not metrics or not customer_ids:
        return result

    # The latest reading within a year, with its value only when it is
    # inside the freshness window: the same as "latest fresh reading, else
    # the latest older one", in one pass.
    oldest = as_of - timedelta(days=max(metrics.values()))
    since = min(oldest, as_of - timedelta(days=365))
    keys = dict(Metric.objects.filter(key__in=list(metrics)).values_list("pk", "key"))
    if not keys:
        return result

    if connection.vendor == "postgresql":
        rows = _latest_readings_postgresql(customer_ids, list(keys), as_of, since)
    else:
        rows = _latest_readings_portable(customer_ids, list(keys), as_of, since)
    for customer_id, metric_id, value, observed_on in rows:
        fresh = observed_on > oldest
        result[customer_id][keys[metric_id]] = (
            value if fresh else None,
            observed_on,
        )
    return result


def _latest_readings_postgresql(
    customer_ids: Sequence[int], metric_ids: list[int], as_of: date, since: date
) -> list[tuple[int, int, float, date]]:
    """One index probe per customer and metric (the unique index on
    customer, metric, day), instead of reading a year of rows and keeping
    the last: a chunk's cost no longer grows with the history kept."""
    sql = """
        SELECT c.id, m.id, r.value, r.observed_on
        FROM unnest(%s::bigint[]) AS c(id)
        CROSS JOIN unnest(%s::bigint[]) AS m(id)
        CROSS JOIN LATERAL (
            SELECT value, observed_on
            FROM health_metricreading
            WHERE customer_id = c.id AND metric_id = m.id
              AND observed_on <= %s AND observed_on > %s
            ORDER BY observed_on DESC
            LIMIT 1
        ) AS r
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [id_array(customer_ids), metric_ids, as_of, since])
        return cursor.fetchall()


def _latest_readings_portable(
    customer_ids: Sequence[int], metric_ids: list[int], as_of: date, since: date
) -> list[tuple[int, int, float, date]]:
    """The same rows on any database: the readings whose day is their
    pair's latest in the window."""
    window = {"observed_on__lte": as_of, "observed_on__gt": since}
    latest_day = (
        MetricReading.objects.filter(
            customer_id=OuterRef("customer_id"),
            metric_id=OuterRef("metric_id"),
            **window,
        )
        .order_by("-observed_on")
        .values("observed_on")[:1]
    )
    return list(
        MetricReading.objects.filter(
            customer_id__in=customer_ids, metric_id__in=metric_ids, **window
        )
        .filter(observed_on=Subquery(latest_day))
        .values_list("customer_id", "metric_id", "value", "observed_on")
    )


def gather_activity(
    customer_ids: Sequence[int], as_of: date, wanted: set[str]
) -> dict[int, Activity]:
    """Activity records that the wanted derived metrics need. At most eight
    queries, only for the kinds of record the metrics use."""
    activity: dict[int, Activity] = defaultdict(Activity)
    if not customer_ids or not wanted:
        return activity

    end = end_of_day(as_of)
    ids = list(customer_ids)

    def of(model) -> Q | RawSQL:
        return customer_in(model, ids)

    if wanted & {"median_hours_to_close", "escalations_90d"}:
        start = window_start(as_of, 90)
        tickets = Ticket.objects.filter(of(Ticket), opened_at__lt=end)
        recent = tickets.filter(Q(opened_at__gte=start) | Q(closed_at__gte=start))
        for cid, opened, closed, escalated in recent.values_list(
            "customer_id", "opened_at", "closed_at", "escalated"
        ):
            activity[cid].tickets.append((opened, closed, escalated))
        for cid in tickets.values_list("customer_id", flat=True).distinct():
            activity[cid].any_ticket = True

    if "nps" in wanted:
        start = window_start(as_of, 180)
        for cid, contact, score, at in NpsResponse.objects.filter(
            of(NpsResponse), responded_at__gte=start, responded_at__lt=end
        ).values_list("customer_id", "contact", "score", "responded_at"):
            activity[cid].nps.append((contact, score, at))

    if wanted & {"product_count", "renewal_count", "lost_opportunity_share"}:
        for cid, *row in Opportunity.objects.filter(
            of(Opportunity), created_on__lte=as_of
        ).values_list(
            "customer_id", "product", "kind", "stage", "created_on", "closed_on"
        ):
            activity[cid].opportunities.append(tuple(row))
            activity[cid].any_opportunity = True

    if wanted & {"days_since_interaction", "interaction_sentiment"}:
        start = window_start(as_of, 90)
        for cid, at, sentiment in Interaction.objects.filter(
            of(Interaction), occurred_at__gte=start, occurred_at__lt=end
        ).values_list("customer_id", "occurred_at", "sentiment"):
            activity[cid].interactions.append((at, sentiment))
        if "days_since_interaction" in wanted:
            for cid, last in (
                Interaction.objects.filter(of(Interaction), occurred_at__lt=end)
                .values("customer_id")
                .annotate(last=Max("occurred_at"))
                .values_list("customer_id", "last")
            ):
                activity[cid].last_interaction_at = last

    if "pulse" in wanted:
        start = window_start(as_of, 60)
        for cid, at, rating in Pulse.objects.filter(
            of(Pulse), entered_at__gte=start, entered_at__lt=end
        ).values_list("customer_id", "entered_at", "rating"):
            activity[cid].pulses.append((at, rating))

    return activity
