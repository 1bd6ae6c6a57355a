"""Small builders for test data: customers with inputs of every kind."""

from datetime import UTC, date, datetime, timedelta

from health.models import (
    Customer,
    Interaction,
    Metric,
    MetricReading,
    NpsResponse,
    Opportunity,
    Pulse,
    Ticket,
)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def customer_with_inputs(n: int, as_of: date, *, variant: int = 0) -> Customer:
    """A customer with readings, tickets, NPS, opportunities, interactions and
    pulses shortly before ``as_of``; ``variant`` moves the values so that
    customers differ."""
    customer = Customer.objects.create(
        name=f"Customer {n:04d}",
        external_id=f"C-{n:05d}",
        segment=("SMB", "Mid-market", "Enterprise")[n % 3],
        arr=10_000 + 1_000 * n,
        customer_since=date(2020, 1, 1),
    )
    metrics = {m.key: m for m in Metric.objects.all()}
    v = variant % 10

    MetricReading.objects.bulk_create(
        [
            MetricReading(
                customer=customer,
                metric=metrics["active_user_ratio"],
                value=0.1 * v,
                observed_on=as_of - timedelta(days=5),
            ),
            MetricReading(
                customer=customer,
                metric=metrics["feature_adoption_ratio"],
                value=0.05 * v,
                observed_on=as_of - timedelta(days=5),
            ),
            MetricReading(
                customer=customer,
                metric=metrics["login_days_30d"],
                value=2 * v,
                observed_on=as_of - timedelta(days=12),
            ),
        ]
    )
    Ticket.objects.bulk_create(
        [
            Ticket(
                customer=customer,
                external_id=f"T-{n}-{i}",
                opened_at=at(as_of - timedelta(days=10 + i)),
                closed_at=at(as_of - timedelta(days=10 + i))
                + timedelta(hours=3 + v * i),
                escalated=(i + v) % 4 == 0,
            )
            for i in range(3)
        ]
    )
    NpsResponse.objects.bulk_create(
        [
            NpsResponse(
                customer=customer,
                contact=f"contact{i}@c{n}.example",
                score=(v + 3 * i) % 11,
                responded_at=at(as_of - timedelta(days=20 + i)),
            )
            for i in range(3)
        ]
    )
    Opportunity.objects.bulk_create(
        [
            Opportunity(
                customer=customer,
                external_id=f"O-{n}-1",
                product="Core",
                kind="new",
                stage="won",
                created_on=date(2020, 1, 1),
                closed_on=date(2020, 1, 15),
            ),
            Opportunity(
                customer=customer,
                external_id=f"O-{n}-2",
                product="Add-on",
                kind="cross_sell",
                stage=("won", "lost", "open")[v % 3],
                created_on=as_of - timedelta(days=100),
                closed_on=None if v % 3 == 2 else as_of - timedelta(days=30),
            ),
        ]
    )
    if v % 2:
        Interaction.objects.create(
            customer=customer,
            kind="call",
            occurred_at=at(as_of - timedelta(days=v)),
            sentiment=(v % 3) - 1,
        )
    Pulse.objects.create(
        customer=customer, rating=1 + v % 5, entered_at=at(as_of - timedelta(days=3))
    )
    return customer
