"""``load_ravenstack``: the public RavenStack tables in, month-end scores out.

The ``realdata`` tests load the published files from the shared data folder.
Their expected numbers come from the raw CSV files, counted with awk or a
few lines of standalone Python (never with the loader); each says how. The
files have CRLF line endings, so every awk below starts with
``{sub(/\\r$/, "")}`` (written ``CR`` in the comments).
"""

from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from health import ravenstack
from health.models import (
    Customer,
    MetricReading,
    Opportunity,
    ScoreSnapshot,
    Ticket,
)

MONTH_ENDS = ravenstack.month_ends()


@pytest.fixture
def ravenstack_folder(shared_data: Path) -> Path:
    folder = shared_data / "ravenstack_saas"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return folder


@pytest.fixture
def loaded(db, ravenstack_folder: Path) -> Path:
    """The published files loaded, not scored (scoring takes most of the
    time, on PostgreSQL especially)."""
    ravenstack.load_ravenstack(folder=ravenstack_folder)
    return ravenstack_folder


@pytest.fixture
def scored(db, ravenstack_folder: Path) -> Path:
    """The published files loaded and scored, through the command."""
    call_command("load_ravenstack", str(ravenstack_folder), stdout=_Quiet())
    return ravenstack_folder


class _Quiet:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def _table(model, *exclude: str) -> list[tuple]:
    fields = [f.attname for f in model._meta.concrete_fields if f.name not in exclude]
    return list(model.objects.order_by("pk").values_list(*fields))


# --- The published files -----------------------------------------------------


@pytest.mark.realdata
def test_row_counts_match_the_files(loaded):
    # awk -F, 'END {print NR - 1}' on accounts and on support tickets: 500,
    # 2000 (the accounts file lacks a final newline, so not wc -l).
    assert Customer.objects.count() == 500
    assert Ticket.objects.count() == 2000
    # Paid subscriptions: awk -F, 'CR NR>1 && $9 == "False"' subscriptions
    # | wc -l -> 4222 (the other 778 are trials).
    assert Opportunity.objects.count() == 4222
    # Kinds: standalone Python over the raw subscriptions, paid ones per
    # account sorted by (start_date, subscription_id); first new, then upsell
    # when upgrade_flag or a higher tier than the one before, else renewal.
    kinds = Counter(Opportunity.objects.values_list("kind", flat=True))
    assert kinds == {"new": 500, "renewal": 2240, "upsell": 1482}
    # Account-months with usage: awk -F, 'CR NR==FNR {if (FNR>1) acc[$1]=$2;
    # next} FNR>1 {print acc[$2], substr($3,1,7)}' subscriptions usage
    # | sort -u | wc -l -> 10182; two readings each.
    assert MetricReading.objects.count() == 2 * 10182
    # awk -F, 'CR NR>1 && $9 == "True"' support_tickets | wc -l -> 95, and
    # 825 with an empty satisfaction_score ($8 == "").
    assert Ticket.objects.filter(escalated=True).count() == 95
    assert Ticket.objects.filter(satisfaction__isnull=True).count() == 825


@pytest.mark.realdata
def test_dates_are_read_day_first(loaded):
    # accounts line 2: A-2e4581,Company_0,...,16/10/2024: a 16th month does
    # not exist, so only day-first reads it at all.
    company_0 = Customer.objects.get(external_id="A-2e4581")
    assert company_0.name == "Company_0"
    assert company_0.customer_since == date(2024, 10, 16)
    assert company_0.segment == "Basic"

    # A-7dacce (Company_8) signed up 10/9/2024: 10 September, not 9 October.
    # Its churn events are 8/12/2024, 18/9/2024 and 27/12/2024: the last is
    # 27 December, which month-first could not even read.
    company_8 = Customer.objects.get(external_id="A-7dacce")
    assert company_8.customer_since == date(2024, 9, 10)
    assert company_8.churned_on == date(2024, 12, 27)


@pytest.mark.realdata
def test_churned_customers_left_on_their_last_churn_event(loaded):
    churned = Customer.objects.filter(churned_on__isnull=False)
    # awk -F, 'CR NR>1 && $10 == "TRUE"' accounts | wc -l -> 110.
    assert churned.count() == 110

    # Month of the last churn event of each flagged account (awk over accounts
    # and churn events, dates split on "/" and compared as YYYY-MM-DD);
    # "none" for the 35 flagged accounts without any churn event, which the
    # loader puts on 2024-12-31, the last day the files cover.
    by_month = Counter(c.churned_on.strftime("%Y-%m") for c in churned)
    assert by_month == {
        "2023-05": 2, "2024-01": 1, "2024-02": 1, "2024-04": 5, "2024-05": 3,
        "2024-06": 6, "2024-07": 5, "2024-08": 5, "2024-09": 10, "2024-10": 13,
        "2024-11": 9, "2024-12": 15 + 35,
    }  # fmt: skip
    # grep A-ce550d churn_events: one event, 28/12/2024.
    assert Customer.objects.get(external_id="A-ce550d").churned_on == date(2024, 12, 28)


@pytest.mark.realdata
def test_customers_are_scored_at_every_month_end_while_customers(scored):
    # Standalone Python over the raw accounts and churn events: for each
    # account, the month ends of 2023-01..2024-12 on or after signup and,
    # when flagged churned, before its churned_on -> 5431 in all, 4407 of
    # them for never-churned customers.
    assert ScoreSnapshot.objects.count() == 5431

    snapshots = {
        (c, d) for c, d in ScoreSnapshot.objects.values_list("customer_id", "as_of")
    }
    for customer in Customer.objects.all():
        expected = {
            day
            for day in MONTH_ENDS
            if day >= customer.customer_since
            and (customer.churned_on is None or day < customer.churned_on)
        }
        scored = {d for c, d in snapshots if c == customer.pk}
        assert scored == expected, customer.external_id
        if customer.churned_on:
            assert all(day < customer.churned_on for day in scored)

    active = Customer.objects.filter(churned_on__isnull=True)
    assert ScoreSnapshot.objects.filter(customer__in=active).count() == 4407


@pytest.mark.realdata
def test_usage_becomes_monthly_readings(loaded):
    # Company_0 (A-2e4581), February 2024: awk joining its subscriptions to
    # usage rows of 2024-02 -> 5 distinct days, 4 distinct features (of 40
    # in the file: awk -F, 'NR>1 {print $4}' usage | sort -u | wc -l).
    readings = dict(
        MetricReading.objects.filter(
            customer__external_id="A-2e4581", observed_on=date(2024, 2, 29)
        ).values_list("metric__key", "value")
    )
    assert readings == {"login_days_30d": 5.0, "feature_adoption_ratio": 4 / 40}
    assert not MetricReading.objects.filter(metric__key="active_user_ratio").exists()


@pytest.mark.realdata
def test_loading_twice_changes_nothing(scored, ravenstack_folder):
    before = {
        model: _table(model, *exclude)
        for model, exclude in [
            (Customer, ()),
            (Opportunity, ()),
            (Ticket, ()),
            (MetricReading, ()),
            # Rescoring rewrites computed_at, and only that.
            (ScoreSnapshot, ("computed_at",)),
        ]
    }

    call_command("load_ravenstack", str(ravenstack_folder), stdout=_Quiet())

    for model, rows in before.items():
        exclude = ("computed_at",) if model is ScoreSnapshot else ()
        assert _table(model, *exclude) == rows, model.__name__


@pytest.mark.realdata
def test_the_command_prints_counts(db, ravenstack_folder, capsys):
    call_command("load_ravenstack", str(ravenstack_folder), "--no-score")

    out = capsys.readouterr().out
    assert "customers:    500 (500 new, 0 updated, 0 unchanged)" in out
    assert "tickets:  2,000 (2,000 new" in out
    assert "110 churned (35 flagged without a churn event)" in out
    assert not ScoreSnapshot.objects.exists()


# --- A tiny set written by the tests -----------------------------------------

ACCOUNTS_HEADER = (
    "account_id,account_name,industry,country,signup_date,referral_source,"
    "plan_tier,seats,is_trial,churn_flag"
)
SUBSCRIPTIONS_HEADER = (
    "subscription_id,account_id,start_date,end_date,plan_tier,seats,mrr_amount,"
    "arr_amount,is_trial,upgrade_flag,downgrade_flag,churn_flag,"
    "billing_frequency,auto_renew_flag"
)
USAGE_HEADER = (
    "usage_id,subscription_id,usage_date,feature_name,usage_count,"
    "usage_duration_secs,error_count,is_beta_feature"
)
TICKETS_HEADER = (
    "ticket_id,account_id,submitted_at,closed_at,resolution_time_hours,priority,"
    "first_response_time_minutes,satisfaction_score,escalation_flag"
)
CHURN_HEADER = (
    "churn_event_id,account_id,churn_date,reason_code,refund_amount_usd,"
    "preceding_upgrade_flag,preceding_downgrade_flag,is_reactivation,feedback_text"
)


def write_tiny_set(
    folder: Path, add: dict[str, list[str]] | None = None, **replace: list[str]
) -> Path:
    """Two accounts in the published layout (CRLF, day-first accounts and
    churn events); ``replace`` swaps a file's data rows, ``add`` appends."""
    files = {
        "accounts": (
            ACCOUNTS_HEADER,
            [
                "A-1,Acme,EdTech,US,1/2/2024,ads,Basic,5,FALSE,FALSE",
                "A-2,Bolt,FinTech,UK,15/1/2023,event,Pro,9,FALSE,TRUE",
            ],
        ),
        "subscriptions": (
            SUBSCRIPTIONS_HEADER,
            [
                "S-1,A-1,2024-02-01,,Basic,5,100,1200,False,False,False,False,"
                "monthly,True",
                "S-2,A-1,2024-03-01,,Basic,5,0,0,True,False,False,False,monthly,True",
                "S-3,A-1,2024-04-01,,Pro,5,200,2400,False,False,False,False,"
                "monthly,True",
                "S-4,A-2,2023-01-20,,Pro,9,300,3600,False,False,False,False,"
                "annual,True",
                "S-5,A-2,2023-06-01,2023-09-30,Pro,9,300,3600,False,False,False,"
                "True,annual,False",
            ],
        ),
        "feature_usage": (
            USAGE_HEADER,
            [
                "U-1,S-1,2024-02-03,feature_1,3,60,0,False",
                "U-2,S-3,2024-02-03,feature_2,3,60,0,False",
                "U-3,S-1,2024-02-10,feature_1,3,60,0,False",
                "U-4,S-4,2023-03-05,feature_3,3,60,0,False",
            ],
        ),
        "support_tickets": (
            TICKETS_HEADER,
            [
                "T-1,A-1,2024-02-05,2024-02-06 03:00:00,27.0,high,10,,True",
                "T-2,A-2,2023-04-01,2023-04-01 05:00:00,5.0,low,10,4.0,False",
            ],
        ),
        "churn_events": (
            CHURN_HEADER,
            [
                "C-1,A-2,3/5/2023,budget,0,FALSE,FALSE,FALSE,",
                "C-2,A-2,12/7/2023,budget,0,FALSE,FALSE,TRUE,too expensive",
                "C-3,A-1,20/3/2024,budget,0,FALSE,FALSE,FALSE,",
            ],
        ),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, (header, rows) in files.items():
        lines = [header, *replace.get(name, rows), *(add or {}).get(name, [])]
        (folder / f"ravenstack_{name}.csv").write_bytes(
            "\r\n".join(lines).encode() + b"\r\n"
        )
    return folder


def test_the_tiny_set_maps_as_documented(db, tmp_path):
    result = ravenstack.load_ravenstack(folder=write_tiny_set(tmp_path / "good"))

    acme = Customer.objects.get(external_id="A-1")
    # 1/2/2024 in a day-first file is 1 February.
    assert acme.customer_since == date(2024, 2, 1)
    assert acme.segment == "Basic"
    # Flagged FALSE despite a churn event: it came back, and stays.
    assert acme.churned_on is None
    # Paid and running on 2024-12-31: S-1 and S-3; S-2 is a trial.
    assert acme.arr == Decimal("3600")
    assert list(
        acme.opportunities.order_by("created_on").values_list(
            "external_id", "kind", "product", "amount", "created_on", "closed_on"
        )
    ) == [
        ("S-1", "new", "Basic", Decimal("1200"), date(2024, 2, 1), date(2024, 2, 1)),
        ("S-3", "upsell", "Pro", Decimal("2400"), date(2024, 4, 1), date(2024, 4, 1)),
    ]
    # Two days and two features in February 2024, across two subscriptions.
    assert dict(
        acme.readings.filter(observed_on=date(2024, 2, 29)).values_list(
            "metric__key", "value"
        )
    ) == {"login_days_30d": 2.0, "feature_adoption_ratio": 2 / 3}
    ticket = acme.tickets.get()
    assert ticket.opened_at == datetime(2024, 2, 5, tzinfo=UTC)
    assert ticket.closed_at == datetime(2024, 2, 6, 3, tzinfo=UTC)
    assert (ticket.priority, ticket.escalated, ticket.satisfaction) == (
        "high",
        True,
        None,
    )

    bolt = Customer.objects.get(external_id="A-2")
    # Churned on its last event, 12 July, and keeps the ARR it had then: S-5
    # had not ended yet.
    assert bolt.churned_on == date(2023, 7, 12)
    assert bolt.arr == Decimal("7200")
    assert list(bolt.opportunities.values_list("kind", flat=True)) == [
        "new",
        "renewal",
    ]
    assert (result.trials_skipped, result.usage_rows) == (1, 4)


def test_a_load_costs_a_fixed_number_of_queries(
    db, tmp_path, django_assert_max_num_queries
):
    folder = write_tiny_set(tmp_path / "good")

    # One read per table, one bulk insert each, the metric ids, the customer
    # ids and the savepoint pair; the published files cost the same plus
    # more insert batches.
    with django_assert_max_num_queries(12):
        ravenstack.load_ravenstack(folder=folder)
    # A second load only reads.
    with django_assert_max_num_queries(8):
        ravenstack.load_ravenstack(folder=folder)


@pytest.mark.parametrize(
    ("replace", "where"),
    [
        (
            # An ISO date in the day-first accounts file.
            {
                "accounts": [
                    "A-1,Acme,EdTech,US,1/2/2024,ads,Basic,5,FALSE,FALSE",
                    "A-2,Bolt,FinTech,UK,2023-01-15,event,Pro,9,FALSE,TRUE",
                ]
            },
            "ravenstack_accounts.csv, line 3, column signup_date: '2023-01-15'",
        ),
        (
            # A day-first date in an ISO file, on the last file read.
            {
                "support_tickets": [
                    "T-1,A-1,2024-02-05,2024-02-06 03:00:00,27.0,high,10,,True",
                    "T-2,A-2,1/4/2023,2023-04-01 05:00:00,5.0,low,10,4.0,False",
                ]
            },
            "ravenstack_support_tickets.csv, line 3, column submitted_at: '1/4/2023'",
        ),
        (
            # 31 February does not exist, however it is written.
            {"churn_events": ["C-1,A-2,31/2/2023,budget,0,FALSE,FALSE,FALSE,"]},
            "ravenstack_churn_events.csv, line 2, column churn_date: '31/2/2023'",
        ),
    ],
)
def test_a_bad_date_names_its_place_and_loads_nothing(db, tmp_path, replace, where):
    ravenstack.load_ravenstack(folder=write_tiny_set(tmp_path / "good"))
    # The bad set also has a new subscription, so a partial load would show.
    new_subscription = (
        "S-9,A-1,2024-05-01,,Basic,5,100,1200,False,False,False,False,monthly,True"
    )
    bad = write_tiny_set(
        tmp_path / "bad", add={"subscriptions": [new_subscription]}, **replace
    )
    before = {
        model: _table(model)
        for model in (Customer, Opportunity, Ticket, MetricReading, ScoreSnapshot)
    }

    with pytest.raises(CommandError) as error:
        call_command("load_ravenstack", str(bad), stdout=_Quiet())

    assert where in str(error.value)
    assert str(error.value).endswith("nothing was loaded")
    for model, rows in before.items():
        assert _table(model) == rows, model.__name__
    assert not Opportunity.objects.filter(external_id="S-9").exists()
