"""What an import writes, whichever way it goes. On PostgreSQL the kinds
whose natural key is unique in their table (readings, tickets, NPS,
opportunities) are staged by COPY in a TEMP table and written set-based
(``health.import_staging``); the other kinds, and every kind on SQLite, are
spooled after pass one and written in batches. Each test works out its
expectations by hand and runs on both databases."""

import re
from datetime import UTC, date, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from health import import_staging, importers, jobs
from health.models import (
    Customer,
    ImportBatch,
    MetricReading,
    NpsResponse,
    Opportunity,
    Ticket,
)

READINGS_HEADER = "customer,metric,value,observed_on"
TICKETS_HEADER = (
    "external_id,customer,opened_at,closed_at,priority,escalated,satisfaction"
)
SUMMARY = re.compile(r"\d+ new, \d+ updated, \d+ unchanged, \d+ skipped")


def csv_file(folder: Path, name: str, *lines: str) -> Path:
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_import(kind: str, path: Path, *flags: str) -> str:
    out = StringIO()
    call_command("import_data", kind, str(path), *flags, stdout=out, stderr=StringIO())
    return out.getvalue()


def readings() -> list[tuple[str, str, float, date, int | None]]:
    return list(
        MetricReading.objects.order_by(
            "customer__external_id", "metric__key", "observed_on"
        ).values_list(
            "customer__external_id", "metric__key", "value", "observed_on", "batch"
        )
    )


@pytest.fixture
def customers(db) -> dict[str, Customer]:
    return {
        "C-1": Customer.objects.create(external_id="C-1", name="Acme"),
        "C-2": Customer.objects.create(external_id="C-2", name="Globex"),
    }


@pytest.fixture
def rescore_calls(monkeypatch) -> list[list[int]]:
    calls = []
    monkeypatch.setattr(
        jobs, "request_rescore", lambda ids, as_of=None: calls.append(list(ids))
    )
    return calls


def test_readings_new_changed_and_unchanged_are_counted_and_written(
    tmp_path, customers, rescore_calls
):
    first = csv_file(
        tmp_path,
        "first.csv",
        READINGS_HEADER,
        "C-1,active_user_ratio,0.5,2024-01-01",
        "C-1,active_user_ratio,0.6,2024-01-02",
    )
    run_import("readings", first)
    older = ImportBatch.objects.get()
    rescore_calls.clear()
    second = csv_file(
        tmp_path,
        "second.csv",
        READINGS_HEADER,
        "C-1,active_user_ratio,0.5,2024-01-01",
        "C-1,active_user_ratio,0.7,2024-01-02",
        "C-2,login_days_30d,12,2024-01-03",
    )

    out = run_import("readings", second)

    assert "1 new, 1 updated, 1 unchanged, 0 skipped" in out
    newer = ImportBatch.objects.latest("pk")
    assert (newer.rows_new, newer.rows_updated, newer.rows_unchanged) == (1, 1, 1)
    # The updated reading keeps the batch that created it.
    assert readings() == [
        ("C-1", "active_user_ratio", 0.5, date(2024, 1, 1), older.pk),
        ("C-1", "active_user_ratio", 0.7, date(2024, 1, 2), older.pk),
        ("C-2", "login_days_30d", 12.0, date(2024, 1, 3), newer.pk),
    ]
    # C-1 for its changed reading, C-2 for its new one; once, in order.
    assert rescore_calls == [sorted([customers["C-1"].pk, customers["C-2"].pk])]


def test_a_ticket_that_moves_to_another_customer_rescores_both(
    tmp_path, customers, rescore_calls
):
    run_import(
        "tickets",
        csv_file(
            tmp_path,
            "first.csv",
            TICKETS_HEADER,
            "T-1,C-1,2024-05-01T08:00:00,,high,yes,4.5",
            "T-2,C-1,2024-05-02T08:00:00,,low,no,",
        ),
    )
    first_batch = ImportBatch.objects.get()
    rescore_calls.clear()

    out = run_import(
        "tickets",
        csv_file(
            tmp_path,
            "second.csv",
            TICKETS_HEADER,
            "T-1,C-2,2024-05-01T08:00:00,2024-05-01T10:00:00,high,yes,4.5",
            "T-2,C-1,2024-05-02T08:00:00Z,,low,0,",
        ),
    )

    # T-2 reads the same: the same moment, false written another way.
    assert "0 new, 1 updated, 1 unchanged, 0 skipped" in out
    moved = Ticket.objects.get(external_id="T-1")
    assert moved.customer == customers["C-2"]
    assert moved.closed_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert moved.batch == first_batch
    assert rescore_calls == [sorted([customers["C-1"].pk, customers["C-2"].pk])]


def test_nps_and_opportunities_written_alike_are_unchanged(tmp_path, customers):
    nps_header = "customer,contact,score,responded_at,comment"
    opportunities_header = (
        "external_id,customer,product,kind,stage,amount,created_on,closed_on"
    )
    run_import(
        "nps",
        csv_file(
            tmp_path, "nps.csv", nps_header, "C-1,ann@acme.test,9,2024-04-01T10:00Z,"
        ),
    )
    run_import(
        "opportunities",
        csv_file(
            tmp_path,
            "opportunities.csv",
            opportunities_header,
            "O-1,C-1,Analytics,renewal,won,5000,2024-01-10,2024-02-01",
        ),
    )

    nps = run_import(
        "nps",
        csv_file(
            tmp_path,
            "nps-again.csv",
            nps_header,
            "C-1,ann@acme.test,9,2024-04-01T12:00:00+02:00,",
            "C-1,ann@acme.test,7,2024-04-02T10:00:00Z,Slow support",
        ),
    )
    opportunities = run_import(
        "opportunities",
        csv_file(
            tmp_path,
            "opportunities-again.csv",
            opportunities_header,
            "O-1,C-1,Analytics,Renewal,WON,5000.00,2024-01-10,2024-02-01",
            "O-2,C-2,,new,open,12.345,2024-03-01,",
        ),
    )

    assert "1 new, 0 updated, 1 unchanged, 0 skipped" in nps
    assert "1 new, 0 updated, 1 unchanged, 0 skipped" in opportunities
    assert NpsResponse.objects.count() == 2
    assert str(Opportunity.objects.get(external_id="O-2").amount) == "12.35"


def test_a_profile_leaves_unmapped_ticket_fields_alone(tmp_path, customers):
    run_import(
        "tickets",
        csv_file(
            tmp_path,
            "full.csv",
            TICKETS_HEADER,
            "T-1,C-1,2024-05-01T08:00:00,,high,yes,4",
        ),
    )
    mapping = importers.Mapping(
        columns={"external_id": "Id", "customer": "Account", "opened_at": "Opened"}
    )
    path = csv_file(
        tmp_path,
        "export.csv",
        "Id,Account,Opened,Owner",
        "T-1,C-1,2024-05-01T09:00:00,Sam",
        "T-2,C-2,2024-05-02T09:00:00,Sam",
    )

    report = importers.import_file(kind="tickets", path=path, mapping=mapping)

    assert report.summary == "1 new, 1 updated, 0 unchanged, 0 skipped"
    kept = Ticket.objects.get(external_id="T-1")
    assert kept.opened_at == datetime(2024, 5, 1, 9, tzinfo=UTC)
    assert (kept.priority, kept.escalated, kept.satisfaction) == ("high", True, 4.0)
    new = Ticket.objects.get(external_id="T-2")
    assert (new.priority, new.escalated, new.satisfaction) == ("", False, None)


def test_rows_before_the_date_order_is_learned_land_once(
    tmp_path, customers, monkeypatch
):
    # Line 3 reads either way, so pass one starts again, day first as line 4
    # proves; the row of line 2, kept (and sent, one row at a time) before
    # that, must not land twice.
    monkeypatch.setattr(import_staging, "COPY_ROWS", 1)
    monkeypatch.setattr(importers, "BATCH_SIZE", 1)
    path = csv_file(
        tmp_path,
        "readings.csv",
        READINGS_HEADER,
        "C-1,login_days_30d,1,2024-01-01",
        "C-1,login_days_30d,2,03/04/2024",
        "C-1,login_days_30d,3,25/04/2024",
    )

    out = run_import("readings", path)

    assert "3 new, 0 updated, 0 unchanged, 0 skipped" in out
    assert [(value, day) for _, _, value, day, _ in readings()] == [
        (1.0, date(2024, 1, 1)),
        (2.0, date(2024, 4, 3)),
        (3.0, date(2024, 4, 25)),
    ]


def test_rows_past_one_copy_or_one_batch_all_land(tmp_path, customers, monkeypatch):
    monkeypatch.setattr(import_staging, "COPY_ROWS", 2)
    monkeypatch.setattr(importers, "BATCH_SIZE", 2)
    lines = [f"C-1,login_days_30d,{day},2024-01-{day:02d}" for day in range(1, 6)]
    lines.insert(3, "C-1,login_days_30d,9,2024-01-02")  # line 5: a second 2 Jan
    path = csv_file(tmp_path, "readings.csv", READINGS_HEADER, *lines)

    out = run_import("readings", path, "--skip-bad-rows")

    assert "5 new, 0 updated, 0 unchanged, 1 skipped" in out
    assert [value for _, _, value, _, _ in readings()] == [1, 2, 3, 4, 5]


def test_dry_runs_count_what_the_import_then_writes(tmp_path, customers):
    path = csv_file(
        tmp_path,
        "readings.csv",
        READINGS_HEADER,
        "C-1,active_user_ratio,0.5,2024-01-01",
        "C-2,active_user_ratio,0.5,2024-01-01",
    )

    # Twice in one transaction (the test's): the staging table of the first
    # is gone before the second makes its own.
    dry = [run_import("readings", path, "--dry-run") for _ in range(2)]
    assert MetricReading.objects.count() == 0
    assert ImportBatch.objects.count() == 0
    real = run_import("readings", path)

    for out in [*dry, real]:
        assert "2 new, 0 updated, 0 unchanged, 0 skipped" in out
    assert MetricReading.objects.count() == 2


def test_readings_are_copied_on_postgresql_only(tmp_path, customers):
    path = csv_file(
        tmp_path,
        "readings.csv",
        READINGS_HEADER,
        "C-1,active_user_ratio,0.5,2024-01-01",
    )

    with CaptureQueriesContext(connection) as queries:
        run_import("readings", path)

    copies = [q for q in queries.captured_queries if q["sql"].startswith("COPY")]
    assert len(copies) == (1 if connection.vendor == "postgresql" else 0)
    assert MetricReading.objects.count() == 1


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite has the batch path only"
)
def test_staged_and_batch_writes_leave_the_same_rows(
    tmp_path, customers, monkeypatch, rescore_calls
):
    files = [
        csv_file(
            tmp_path,
            "first.csv",
            TICKETS_HEADER,
            "T-1,C-1,2024-05-01T08:00:00,,high,yes,4.5",
            "T-2,C-1,2024-05-02T08:00:00,,low,no,",
        ),
        csv_file(
            tmp_path,
            "second.csv",
            TICKETS_HEADER,
            "T-1,C-2,2024-05-01T08:00:00,2024-05-03T08:00:00,high,yes,4.5",
            "T-2,C-1,2024-05-02T08:00:00,,low,no,",
            "T-3,C-9,2024-05-02T08:00:00,,low,no,",
            "T-4,C-1,2024-05-04T08:00:00,,urgent,no,1",
        ),
    ]

    def imported() -> tuple[list, list, list]:
        outs = [
            SUMMARY.search(run_import("tickets", path, "--skip-bad-rows")).group()
            for path in files
        ]
        batches = list(ImportBatch.objects.order_by("pk").values_list("pk", flat=True))
        rows = [
            (*row[:-1], batches.index(row[-1]))
            for row in Ticket.objects.order_by("external_id").values_list(
                "external_id",
                "customer",
                "opened_at",
                "closed_at",
                "priority",
                "escalated",
                "satisfaction",
                "batch",
            )
        ]
        calls = list(rescore_calls)
        Ticket.objects.all().delete()
        ImportBatch.objects.all().delete()
        rescore_calls.clear()
        return outs, rows, calls

    staged = imported()
    monkeypatch.setattr(import_staging, "supports", lambda *args: False)
    batched = imported()

    assert staged == batched
    assert staged[0] == [
        "2 new, 0 updated, 0 unchanged, 0 skipped",
        "1 new, 1 updated, 1 unchanged, 1 skipped",
    ]
