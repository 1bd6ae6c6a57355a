"""``manage.py import_data``: every canonical kind, the validation rules, the
idempotence of a second import and what follows a successful one."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from health import jobs
from health.models import (
    Customer,
    ImportBatch,
    Interaction,
    MetricReading,
    NpsResponse,
    Opportunity,
    Pulse,
    ScoreSnapshot,
    Ticket,
)

READINGS_HEADER = "customer,metric,value,observed_on"
STORED = [
    User,
    Customer,
    MetricReading,
    Ticket,
    NpsResponse,
    Opportunity,
    Interaction,
    Pulse,
    ImportBatch,
    ScoreSnapshot,
]


def csv_file(folder: Path, name: str, *lines: str) -> Path:
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_import(kind: str, path: Path, *flags: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_data", kind, str(path), *flags, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def failed_import(kind: str, path: Path, *flags: str) -> str:
    with pytest.raises(CommandError) as failure:
        run_import(kind, path, *flags)
    return str(failure.value)


def stored_rows() -> dict[str, list[dict]]:
    """Every row the imports could touch, to compare before and after."""
    return {
        model.__name__: list(model.objects.order_by("pk").values()) for model in STORED
    }


def readings_lines(count: int, customer: str = "C-1") -> list[str]:
    start = date(2024, 1, 1)
    return [
        f"{customer},active_user_ratio,0.5,{start + timedelta(days=i)}"
        for i in range(count)
    ]


@pytest.fixture
def customers(csm) -> dict[str, Customer]:
    return {
        "C-1": Customer.objects.create(external_id="C-1", name="Acme", owner=csm),
        "C-2": Customer.objects.create(external_id="C-2", name="Globex"),
    }


@pytest.fixture
def rescore_calls(monkeypatch) -> list[list[int]]:
    """Every call of request_rescore, passed on to the real one."""
    calls = []
    real = jobs.request_rescore

    def spy(customer_ids, as_of=None):
        calls.append(list(customer_ids))
        return real(customer_ids, as_of)

    monkeypatch.setattr(jobs, "request_rescore", spy)
    return calls


# --- Each kind ----------------------------------------------------------------


def test_imports_users_with_role_and_no_usable_password(db, tmp_path, csm):
    path = csv_file(
        tmp_path,
        "users.csv",
        "email,first_name,last_name,role",
        "Dana@Example.com,Dana,Diaz,CSM",
        "csm@example.com,Casey,Smith,CS manager",
    )

    out, _ = run_import("users", path)

    assert "1 new, 1 updated, 0 unchanged, 0 skipped" in out
    dana = User.objects.get(email="dana@example.com")
    assert dana.username == "dana@example.com"
    assert (dana.first_name, dana.last_name) == ("Dana", "Diaz")
    assert not dana.has_usable_password()
    assert list(dana.groups.values_list("name", flat=True)) == ["CSM"]
    csm.refresh_from_db()
    assert list(csm.groups.values_list("name", flat=True)) == ["CS manager"]
    assert csm.check_password("test-pass-123")

    again, _ = run_import("users", path)
    assert "0 new, 0 updated, 2 unchanged, 0 skipped" in again


def test_imports_customers(db, tmp_path, csm):
    path = csv_file(
        tmp_path,
        "customers.csv",
        "external_id,name,segment,arr,owner_email,customer_since,renewal_date,"
        "churned_on",
        "C-1,Acme,enterprise,120000.50,CSM@example.com,2021-03-01,2025-03-01,",
        "C-2,Globex,,,,,,2024-02-29",
    )

    out, _ = run_import("customers", path)

    assert "2 new, 0 updated, 0 unchanged, 0 skipped" in out
    acme = Customer.objects.get(external_id="C-1")
    assert acme.name == "Acme"
    assert acme.segment == "enterprise"
    assert acme.arr == Decimal("120000.50")
    assert acme.owner == csm
    assert acme.customer_since == date(2021, 3, 1)
    assert acme.renewal_date == date(2025, 3, 1)
    assert acme.churned_on is None
    globex = Customer.objects.get(external_id="C-2")
    assert (globex.owner, globex.arr) == (None, Decimal("0"))
    assert globex.churned_on == date(2024, 2, 29)


def test_imports_readings_with_their_batch(db, tmp_path, customers):
    path = csv_file(
        tmp_path,
        "readings.csv",
        READINGS_HEADER,
        "C-1,active_user_ratio,0.75,2024-05-01",
        "C-2,login_days_30d,12,2024-05-02",
    )

    out, _ = run_import("readings", path)

    assert "2 new, 0 updated, 0 unchanged, 0 skipped" in out
    batch = ImportBatch.objects.get()
    assert (batch.kind, batch.file_name, batch.rows_new) == ("readings", path.name, 2)
    rows = MetricReading.objects.order_by("observed_on").values_list(
        "customer__external_id", "metric__key", "value", "observed_on", "batch"
    )
    assert list(rows) == [
        ("C-1", "active_user_ratio", 0.75, date(2024, 5, 1), batch.pk),
        ("C-2", "login_days_30d", 12.0, date(2024, 5, 2), batch.pk),
    ]


def test_imports_tickets_with_utc_date_times(db, tmp_path, customers):
    path = csv_file(
        tmp_path,
        "tickets.csv",
        "external_id,customer,opened_at,closed_at,priority,escalated,satisfaction",
        "T-1,C-1,2024-05-01T08:00:00,2024-05-01T12:30:00+02:00,high,yes,4.5",
        "T-2,C-2,2024-05-02 09:15Z,,low,,",
    )

    run_import("tickets", path)

    first = Ticket.objects.get(external_id="T-1")
    assert first.customer == customers["C-1"]
    assert first.opened_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert first.closed_at == datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    assert (first.priority, first.escalated, first.satisfaction) == ("high", True, 4.5)
    second = Ticket.objects.get(external_id="T-2")
    assert second.opened_at == datetime(2024, 5, 2, 9, 15, tzinfo=UTC)
    assert (second.closed_at, second.escalated, second.satisfaction) == (
        None,
        False,
        None,
    )


def test_imports_nps_responses(db, tmp_path, customers):
    path = csv_file(
        tmp_path,
        "nps.csv",
        "customer,contact,score,responded_at,comment",
        'C-1,ann@acme.test,9,2024-04-01T10:00:00Z,"Great, thanks"',
        "C-1,bob@acme.test,0,2024-04-02T10:00:00Z,",
    )

    run_import("nps", path)

    rows = NpsResponse.objects.order_by("contact").values_list(
        "customer__external_id", "contact", "score", "responded_at", "comment"
    )
    assert list(rows) == [
        (
            "C-1",
            "ann@acme.test",
            9,
            datetime(2024, 4, 1, 10, tzinfo=UTC),
            "Great, thanks",
        ),
        ("C-1", "bob@acme.test", 0, datetime(2024, 4, 2, 10, tzinfo=UTC), ""),
    ]


def test_imports_opportunities(db, tmp_path, customers):
    path = csv_file(
        tmp_path,
        "opportunities.csv",
        "external_id,customer,product,kind,stage,amount,created_on,closed_on",
        "O-1,C-1,Analytics,renewal,won,5000,2024-01-10,2024-02-01",
        "O-2,C-2,,cross_sell,open,,2024-03-01,",
    )

    run_import("opportunities", path)

    won = Opportunity.objects.get(external_id="O-1")
    assert (won.product, won.kind, won.stage) == ("Analytics", "renewal", "won")
    assert won.amount == Decimal("5000")
    assert (won.created_on, won.closed_on) == (date(2024, 1, 10), date(2024, 2, 1))
    open_one = Opportunity.objects.get(external_id="O-2")
    assert (open_one.customer, open_one.amount) == (customers["C-2"], Decimal("0"))
    assert open_one.closed_on is None


def test_imports_interactions(db, tmp_path, customers, csm):
    path = csv_file(
        tmp_path,
        "interactions.csv",
        "customer,csm_email,kind,occurred_at,sentiment,summary",
        "C-1,csm@example.com,qbr,2024-05-03T14:00:00,+1,Went well",
        "C-2,csm@example.com,call,2024-05-04T09:00:00,-1,",
    )

    run_import("interactions", path)

    rows = Interaction.objects.order_by("occurred_at").values_list(
        "customer__external_id", "csm", "kind", "occurred_at", "sentiment", "summary"
    )
    assert list(rows) == [
        ("C-1", csm.pk, "qbr", datetime(2024, 5, 3, 14, tzinfo=UTC), 1, "Went well"),
        ("C-2", csm.pk, "call", datetime(2024, 5, 4, 9, tzinfo=UTC), -1, ""),
    ]


def test_imports_pulses(db, tmp_path, customers, csm):
    path = csv_file(
        tmp_path,
        "pulses.csv",
        "customer,csm_email,rating,entered_at,note",
        "C-1,csm@example.com,2,2024-05-05T16:00:00+00:00,Champion left",
    )

    run_import("pulses", path)

    pulse = Pulse.objects.get()
    assert (pulse.customer, pulse.csm, pulse.rating) == (customers["C-1"], csm, 2)
    assert pulse.entered_at == datetime(2024, 5, 5, 16, tzinfo=UTC)
    assert pulse.note == "Champion left"


def test_imports_xlsx(db, tmp_path, customers):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["customer", "metric", "value", "observed_on"])
    sheet.append(["C-1", "login_days_30d", 14, date(2024, 5, 1)])
    sheet.append([])
    sheet.append(["C-2", "login_days_30d", "many", "2024-05-01"])
    path = tmp_path / "readings.xlsx"
    workbook.save(path)

    message = failed_import("readings", path)
    assert "line 4, column value: 'many' is not a number" in message

    sheet["C4"] = 3
    workbook.save(path)
    run_import("readings", path)
    assert sorted(MetricReading.objects.values_list("value", flat=True)) == [3, 14]


# --- Validation -----------------------------------------------------------------


def test_one_bad_row_leaves_the_database_as_it_was(db, tmp_path, customers):
    lines = readings_lines(20)
    lines[10] = "C-1,active_user_ratio,abc,2024-02-01"
    path = csv_file(tmp_path, "readings.csv", READINGS_HEADER, *lines)
    before = stored_rows()

    message = failed_import("readings", path)

    assert "1 bad row;" in message
    assert "line 12, column value: 'abc' is not a number" in message
    assert stored_rows() == before


def test_lists_every_bad_row(db, tmp_path, customers):
    path = csv_file(
        tmp_path,
        "readings.csv",
        READINGS_HEADER,
        "C-1,active_user_ratio,0.5,2024-01-01",
        "C-9,active_user_ratio,0.5,2024-01-02",
        "C-1,happiness,0.5,2024-01-03",
        "C-1,nps,20,2024-01-04",
        "C-1,login_days_30d,,2024-01-05",
        "C-1,login_days_30d,3,2024-01-32",
    )

    message = failed_import("readings", path)

    assert "5 bad rows;" in message
    for expected in [
        "line 3, column customer: no customer has external id 'C-9'",
        "line 4, column metric: no metric has key 'happiness'",
        "line 5, column metric: metric 'nps' is derived from activity records",
        "line 6, column value: is required",
        "line 7, column observed_on: '2024-01-32' is not a date",
    ]:
        assert expected in message
    assert MetricReading.objects.count() == 0


@pytest.mark.parametrize(
    ("kind", "header", "row", "expected"),
    [
        (
            "nps",
            "customer,contact,score,responded_at,comment",
            "C-1,ann@acme.test,11,2024-04-01T10:00:00,",
            "column score: '11' is not between 0 and 10",
        ),
        (
            "pulses",
            "customer,csm_email,rating,entered_at,note",
            "C-1,csm@example.com,0,2024-04-01T10:00:00,",
            "column rating: '0' is not between 1 and 5",
        ),
        (
            "interactions",
            "customer,csm_email,kind,occurred_at,sentiment,summary",
            "C-1,csm@example.com,call,2024-04-01T10:00:00,2,",
            "column sentiment: '2' is not -1, 0 or 1",
        ),
        (
            "opportunities",
            "external_id,customer,product,kind,stage,amount,created_on,closed_on",
            "O-1,C-1,,resale,open,,2024-01-10,",
            "column kind: 'resale' is not one of new, renewal, upsell, cross_sell",
        ),
        (
            "opportunities",
            "external_id,customer,product,kind,stage,amount,created_on,closed_on",
            "O-1,C-1,,new,pending,,2024-01-10,",
            "column stage: 'pending' is not one of open, won, lost",
        ),
        (
            "opportunities",
            "external_id,customer,product,kind,stage,amount,created_on,closed_on",
            "O-1,C-1,,new,won,,2024-01-10,2024-01-09",
            "column closed_on: is before created_on",
        ),
        (
            "tickets",
            "external_id,customer,opened_at,closed_at,priority,escalated,satisfaction",
            "T-1,C-1,2024-05-01T08:00:00,2024-05-01T07:59:00,,no,",
            "column closed_at: is before opened_at",
        ),
        (
            "tickets",
            "external_id,customer,opened_at,closed_at,priority,escalated,satisfaction",
            "T-1,C-1,2024-05-01T08:00:00,,,maybe,",
            "column escalated: 'maybe' is not true/false, 1/0 or yes/no",
        ),
        (
            "users",
            "email,first_name,last_name,role",
            "new@example.com,New,User,Boss",
            "column role: 'Boss' is not a role (CSM, CS manager, Admin)",
        ),
    ],
)
def test_rejects_values_out_of_range(
    db, tmp_path, customers, kind, header, row, expected
):
    path = csv_file(tmp_path, f"{kind}.csv", header, row)
    before = stored_rows()

    message = failed_import(kind, path)

    assert f"line 2, {expected}" in message
    assert stored_rows() == before


def test_unknown_email_is_a_bad_row(db, tmp_path, customers):
    path = csv_file(
        tmp_path,
        "pulses.csv",
        "customer,csm_email,rating,entered_at,note",
        "C-1,csm@example.com,4,2024-04-01T10:00:00,",
        "C-1,ghost@example.com,4,2024-04-02T10:00:00,",
    )

    message = failed_import("pulses", path)

    assert "line 3, column csm_email: no user has email 'ghost@example.com'" in message
    assert Pulse.objects.count() == 0


def test_unknown_and_missing_headers_are_named(db, tmp_path, customers):
    path = csv_file(tmp_path, "readings.csv", "customer,metric,amount", "C-1,nps,1")

    message = failed_import("readings", path)

    assert "missing columns: value, observed_on" in message
    assert "unknown columns: amount" in message


def test_optional_columns_may_be_left_out_and_keep_stored_values(db, tmp_path):
    full = csv_file(
        tmp_path,
        "full.csv",
        "external_id,name,segment,arr,owner_email,customer_since,renewal_date,"
        "churned_on",
        "X-1,Acme,SMB,1200,,2024-01-01,,",
    )
    run_import("customers", full)
    names_only = csv_file(
        tmp_path, "names.csv", "name,external_id", "Acme Inc,X-1", "Beta,X-2"
    )

    out, _ = run_import("customers", names_only)

    assert "1 new, 1 updated, 0 unchanged" in out
    acme, beta = Customer.objects.order_by("external_id")
    assert (acme.name, acme.segment, acme.arr) == ("Acme Inc", "SMB", 1200)
    assert acme.customer_since == date(2024, 1, 1)
    assert (beta.name, beta.segment, beta.arr) == ("Beta", "", 0)
    # A required column stays required.
    no_name = csv_file(tmp_path, "ids.csv", "external_id", "X-3")
    assert "missing columns: name" in failed_import("customers", no_name)


def test_the_same_key_twice_names_both_lines(db, tmp_path, customers):
    path = csv_file(
        tmp_path,
        "readings.csv",
        READINGS_HEADER,
        "C-1,active_user_ratio,0.5,2024-01-01",
        "C-2,active_user_ratio,0.5,2024-01-01",
        "C-1,active_user_ratio,0.6,2024-01-01",
    )

    message = failed_import("readings", path)

    assert (
        "line 4, column customer: same customer, metric, observed_on as line 2"
        in message
    )
    assert MetricReading.objects.count() == 0


def test_line_numbers_count_the_lines_of_quoted_cells(db, tmp_path, customers):
    # The summary of line 2 runs over lines 2-4, so the bad row is line 5.
    path = tmp_path / "interactions.csv"
    path.write_bytes(
        "\ufeffcustomer,csm_email,kind,occurred_at,sentiment,summary\r\n"
        'C-1,csm@example.com,call,2024-05-01T10:00:00,0,"one\r\ntwo\r\nthree"\r\n'
        "C-1,csm@example.com,lunch,2024-05-02T10:00:00,0,\r\n".encode()
    )

    message = failed_import("interactions", path)

    assert "line 5, column kind: 'lunch' is not one of" in message


# --- Idempotence, updates, flags ------------------------------------------------


def test_a_second_import_changes_nothing(db, tmp_path, customers, csm):
    path = csv_file(
        tmp_path,
        "interactions.csv",
        "customer,csm_email,kind,occurred_at,sentiment,summary",
        "C-1,csm@example.com,qbr,2024-05-03T14:00:00,1,Went well",
        "C-2,csm@example.com,call,2024-05-04T09:00:00+00:00,0,",
    )
    run_import("interactions", path)
    before = list(Interaction.objects.order_by("pk").values())

    out, _ = run_import("interactions", path)

    assert "0 new, 0 updated, 2 unchanged, 0 skipped" in out
    assert list(Interaction.objects.order_by("pk").values()) == before
    second = ImportBatch.objects.order_by("pk").last()
    assert (second.rows_new, second.rows_unchanged) == (0, 2)


def test_a_changed_row_updates_its_record(db, tmp_path, customers):
    header = "external_id,name,segment,arr,owner_email,customer_since,renewal_date,"
    header += "churned_on"
    path = csv_file(
        tmp_path,
        "customers.csv",
        header,
        "C-1,Acme Corp,,0,,,,",
        "C-2,Globex,,0,,,,",
        "C-3,Initech,,0,,,,",
    )

    out, _ = run_import("customers", path)

    assert "1 new, 1 updated, 1 unchanged, 0 skipped" in out
    acme = Customer.objects.get(external_id="C-1")
    assert (acme.name, acme.owner) == ("Acme Corp", None)
    assert Customer.objects.count() == 3


def test_skip_bad_rows_lands_the_good_ones_and_writes_the_rejects(
    db, tmp_path, customers
):
    path = csv_file(
        tmp_path,
        "readings.csv",
        READINGS_HEADER,
        "C-1,active_user_ratio,0.5,2024-01-01",
        "C-1,active_user_ratio,=1+1,2024-01-02",
        "C-2,feature_adoption_ratio,0.3,2024-01-01",
    )

    out, err = run_import("readings", path, "--skip-bad-rows")

    rejects = tmp_path / "readings.rejects.csv"
    assert f"Bad rows written to {rejects}" in out
    assert "1 new" not in out and "2 new, 0 updated, 0 unchanged, 1 skipped" in out
    assert "line 3, column value: '=1+1' is not a number" in err
    assert rejects.read_text(encoding="utf-8").splitlines() == [
        "customer,metric,value,observed_on,line,reason",
        "C-1,active_user_ratio,=1+1,2024-01-02,3,value: '=1+1' is not a number",
    ]
    assert MetricReading.objects.count() == 2
    batch = ImportBatch.objects.get()
    assert (batch.rows_new, batch.rows_skipped) == (2, 1)
    assert batch.errors == ["line 3, column value: '=1+1' is not a number"]


def test_dry_run_writes_and_enqueues_nothing(
    db, tmp_path, customers, rescore_calls, django_capture_on_commit_callbacks
):
    path = csv_file(tmp_path, "readings.csv", READINGS_HEADER, *readings_lines(3))
    before = stored_rows()

    with django_capture_on_commit_callbacks() as callbacks:
        out, _ = run_import("readings", path, "--dry-run")

    assert "Dry run" in out
    assert "3 new, 0 updated, 0 unchanged, 0 skipped" in out
    assert stored_rows() == before
    assert callbacks == []
    assert rescore_calls == []


def test_dry_run_reports_bad_rows_too(db, tmp_path, customers):
    lines = [READINGS_HEADER, *readings_lines(2), "C-1,pulse,3,2024-01-01"]
    path = csv_file(tmp_path, "readings.csv", *lines)

    message = failed_import("readings", path, "--dry-run")

    assert "line 4, column metric: metric 'pulse' is derived" in message
    assert not (tmp_path / "readings.rejects.csv").exists()


# --- What follows an import --------------------------------------------------------


def test_customers_are_rescored_once_after_an_import(
    db, tmp_path, customers, rescore_calls, django_capture_on_commit_callbacks
):
    today = jobs.today()
    path = csv_file(
        tmp_path,
        "readings.csv",
        READINGS_HEADER,
        f"C-1,active_user_ratio,0.8,{today}",
        f"C-1,feature_adoption_ratio,0.6,{today}",
        f"C-2,login_days_30d,20,{today - timedelta(days=1)}",
    )

    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run_import("readings", path)

    assert "Re-scoring 2 customers" in out
    ids = sorted(c.pk for c in customers.values())
    assert rescore_calls == [ids]
    # Adoption alone is 40 % of the weight, under the 50 % minimum coverage.
    snapshot = ScoreSnapshot.objects.get(customer=customers["C-1"], as_of=today)
    assert (snapshot.score, snapshot.band, snapshot.coverage) == (
        None,
        "unscored",
        0.4,
    )
    assert ScoreSnapshot.objects.filter(customer=customers["C-2"]).count() == 1


def test_an_import_that_changes_nothing_rescores_no_one(
    db, tmp_path, customers, rescore_calls
):
    path = csv_file(tmp_path, "readings.csv", READINGS_HEADER, *readings_lines(2))
    run_import("readings", path)

    run_import("readings", path)

    assert rescore_calls == [[customers["C-1"].pk]]


def test_import_queries_do_not_grow_with_rows(db, tmp_path, customers):
    small = csv_file(tmp_path, "small.csv", READINGS_HEADER, *readings_lines(10))
    large = csv_file(
        tmp_path, "large.csv", READINGS_HEADER, *readings_lines(100, "C-2")
    )

    with CaptureQueriesContext(connection) as small_import:
        run_import("readings", small)
    with CaptureQueriesContext(connection) as large_import:
        run_import("readings", large)

    assert MetricReading.objects.count() == 110
    assert len(large_import) == len(small_import)
