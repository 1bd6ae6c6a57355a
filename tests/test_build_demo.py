"""``build_demo``: a demo book with every band, every input kind and a login
per role, that a second run replaces instead of duplicating."""

from datetime import date, timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import F

from health.demo import DEMO_USERS, demo_backfill_dates
from health.models import (
    Band,
    Customer,
    Interaction,
    MetricReading,
    NpsResponse,
    Opportunity,
    Pulse,
    ScoreSnapshot,
    Ticket,
)
from workbench.roles import ADMIN, CSM, MANAGER

AS_OF = date(2026, 3, 15)
ROW_MODELS = [
    Customer,
    User,
    MetricReading,
    Ticket,
    NpsResponse,
    Opportunity,
    Interaction,
    Pulse,
    ScoreSnapshot,
]

pytestmark = pytest.mark.django_db


def build(customers: int = 60, seed: int = 1) -> str:
    out = StringIO()
    call_command(
        "build_demo",
        f"--customers={customers}",
        f"--seed={seed}",
        f"--as-of={AS_OF.isoformat()}",
        stdout=out,
    )
    return out.getvalue()


def printed_logins(output: str) -> list[tuple[str, str, str]]:
    """(role, username, password) from the lines after the logins heading."""
    lines = output.split("Demo logins", 1)[1].splitlines()[1:]
    logins = []
    for line in lines:
        role, username, password = line.strip().rsplit(maxsplit=2)
        logins.append((role.strip(), username, password))
    return logins


def row_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in ROW_MODELS}


def test_backfill_dates_are_month_ends_and_the_last_days():
    dates = demo_backfill_dates(AS_OF)

    assert dates[-1] == AS_OF
    assert dates == sorted(set(dates))
    assert AS_OF - timedelta(days=35) in dates
    assert date(2026, 2, 28) in dates
    assert dates[0] == date(2024, 9, 30)  # 18 month ends back
    assert len(dates) == 36 + 17  # February's end is among the daily ones


def test_every_band_is_present_at_the_latest_date():
    output = build()

    bands = set(
        ScoreSnapshot.objects.filter(as_of=AS_OF).values_list("band", flat=True)
    )
    assert bands >= {
        Band.VERY_UNHEALTHY,
        Band.UNHEALTHY,
        Band.NEUTRAL,
        Band.HEALTHY,
        Band.VERY_HEALTHY,
    }
    assert "very_unhealthy" in output  # the command prints the band mix


def test_every_input_kind_has_rows():
    build()

    assert Customer.objects.filter(external_id__startswith="DEMO-").count() == 60
    assert set(Customer.objects.values_list("segment", flat=True)) == {
        "SMB",
        "Mid-market",
        "Enterprise",
    }
    assert set(
        MetricReading.objects.values_list("metric__key", flat=True).distinct()
    ) == {"active_user_ratio", "feature_adoption_ratio", "login_days_30d"}
    assert Ticket.objects.filter(escalated=True).exists()
    assert Ticket.objects.filter(escalated=False, closed_at__isnull=False).exists()
    assert NpsResponse.objects.exists()
    assert set(Opportunity.objects.values_list("kind", flat=True)) == set(
        Opportunity.Kind.values
    )
    assert set(Opportunity.objects.values_list("stage", flat=True)) == set(
        Opportunity.Stage.values
    )
    assert set(Interaction.objects.values_list("sentiment", flat=True)) == {-1, 0, 1}
    assert not Interaction.objects.exclude(csm=F("customer__owner")).exists()
    assert Pulse.objects.exists()

    # Some customers have too few contacts for an NPS, others enough.
    contacts = {
        c.pk: c.nps_responses.values("contact").distinct().count()
        for c in Customer.objects.all()
    }
    assert min(contacts.values()) < 3 <= max(contacts.values())


def test_history_tells_a_story():
    build()

    first = demo_backfill_dates(AS_OF)[0]
    assert ScoreSnapshot.objects.filter(as_of=first).exists()
    month_ago = dict(
        ScoreSnapshot.objects.filter(as_of=AS_OF - timedelta(days=30)).values_list(
            "customer_id", "band"
        )
    )
    now = dict(
        ScoreSnapshot.objects.filter(as_of=AS_OF).values_list("customer_id", "band")
    )
    movers = [c for c in now if c in month_ago and month_ago[c] != now[c]]
    assert movers, "some customers change band over the last month"
    assert len(movers) < len(now) / 2


def test_each_role_has_a_user_who_can_log_in(client):
    output = build()

    logins = printed_logins(output)
    assert [role for role, _, _ in logins] == [CSM, MANAGER, ADMIN]
    for role, username, password in logins:
        assert client.login(username=username, password=password), username
        user = User.objects.get(username=username)
        assert user.groups.filter(name=role).exists()
        client.logout()

    admin = User.objects.get(username=logins[2][1])
    assert admin.is_staff and admin.is_superuser
    assert User.objects.filter(groups__name=CSM).count() >= 4
    assert User.objects.filter(groups__name=MANAGER).count() >= 2
    assert not Customer.objects.exclude(owner__groups__name=CSM).exists()


def test_running_twice_leaves_the_same_rows():
    build()
    before = row_counts()
    scores = set(ScoreSnapshot.objects.values_list("customer__external_id", "score"))

    build()

    assert row_counts() == before
    assert User.objects.count() == len(DEMO_USERS)
    # Same seed, same book: the scores come out the same.
    assert (
        set(ScoreSnapshot.objects.values_list("customer__external_id", "score"))
        == scores
    )


def test_it_leaves_other_customers_alone():
    other = Customer.objects.create(name="Real customer", external_id="ACME-1")
    build(customers=25)

    build(customers=21)

    assert Customer.objects.filter(pk=other.pk).exists()
    assert Customer.objects.filter(external_id__startswith="DEMO-").count() == 21


def test_churned_customers_have_no_snapshot_after_their_churn_date():
    build()

    churned = Customer.objects.filter(churned_on__isnull=False)
    assert churned.exists()
    assert not churned.exclude(
        churned_on__gt=AS_OF - timedelta(days=550), churned_on__lte=AS_OF
    ).exists()
    assert not ScoreSnapshot.objects.filter(
        customer__churned_on__isnull=False, as_of__gte=F("customer__churned_on")
    ).exists()
    # Nor any input after it.
    assert not MetricReading.objects.filter(
        customer__churned_on__isnull=False,
        observed_on__gte=F("customer__churned_on"),
    ).exists()
    assert ScoreSnapshot.objects.filter(customer__in=churned).exists()
