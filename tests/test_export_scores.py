"""``manage.py export_scores`` and the score selectors behind it: the
columns, the change over 30 days (DESIGN.md rule 9) and formula
neutralising."""

import csv
from datetime import date, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from health import selectors
from health.models import Customer, JobRun, ScoreModel, ScoreSnapshot

D = date(2024, 6, 30)
D_MINUS_30 = date(2024, 5, 31)


@pytest.fixture
def default_model(db) -> ScoreModel:
    return ScoreModel.objects.get(name="Default", version=1)


def snapshot(customer, model, as_of, score, coverage=0.75):
    band = "unscored" if score is None else "neutral"
    if score is not None and score >= 60:
        band = "healthy"
    return ScoreSnapshot.objects.create(
        customer=customer,
        model=model,
        as_of=as_of,
        score=score,
        band=band,
        coverage=coverage,
    )


@pytest.fixture
def book(default_model, csm) -> dict[str, Customer]:
    """Six customers whose 30-day change tests one case of rule 9 each."""
    names = {
        "A-1": "Baseline on D-30",
        "B-2": "Baseline 7 days older",
        "C-3": "Baseline 8 days older",
        "D-4": "Unscored now",
        "E-5": "Unscored baseline",
        "F-6": "Baseline before D-30",
    }
    customers = {
        ext: Customer.objects.create(external_id=ext, name=name, owner=csm)
        for ext, name in names.items()
    }
    m = default_model
    snapshot(customers["A-1"], m, D, 72.5)
    snapshot(customers["A-1"], m, D_MINUS_30, 70.0)
    snapshot(customers["B-2"], m, D, 50.0)
    snapshot(customers["B-2"], m, D_MINUS_30 - timedelta(days=7), 60.0)
    snapshot(customers["C-3"], m, D, 40.0)
    snapshot(customers["C-3"], m, D_MINUS_30 - timedelta(days=8), 30.0)
    snapshot(customers["D-4"], m, D, None, coverage=0.4)
    snapshot(customers["D-4"], m, D_MINUS_30, 45.0)
    snapshot(customers["E-5"], m, D, 65.0)
    snapshot(customers["E-5"], m, D_MINUS_30, None, coverage=0.3)
    snapshot(customers["E-5"], m, D_MINUS_30 - timedelta(days=2), 55.0)
    snapshot(customers["F-6"], m, D, 61.2)
    snapshot(customers["F-6"], m, D_MINUS_30 + timedelta(days=1), 10.0)
    snapshot(customers["F-6"], m, D_MINUS_30 - timedelta(days=1), 58.9)
    return customers


def export(*args: str) -> list[list[str]]:
    out = StringIO()
    call_command("export_scores", *args, stdout=out, stderr=StringIO())
    return list(csv.reader(StringIO(out.getvalue())))


def test_score_deltas_follow_rule_9(book):
    ids = {ext: c.pk for ext, c in book.items()}
    stranger = Customer.objects.create(external_id="Z-9", name="Never scored")

    deltas = selectors.score_deltas([*ids.values(), stranger.pk], D)

    assert deltas == {
        ids["A-1"]: 2.5,  # 72.5 - 70.0
        ids["B-2"]: -10.0,  # baseline exactly 7 days before D-30 counts
        ids["C-3"]: None,  # 8 days before: too old
        ids["D-4"]: None,  # unscored now
        ids["E-5"]: None,  # the latest baseline is unscored
        ids["F-6"]: 2.3,  # 61.2 - 58.9; the D-29 snapshot is after D-30
        stranger.pk: None,
    }


def test_score_deltas_over_other_spans(book):
    a = book["A-1"]

    assert selectors.score_deltas([a.pk], D, days=30) == {a.pk: 2.5}
    assert selectors.score_deltas([a.pk], D, days=25) == {a.pk: 2.5}
    assert selectors.score_deltas([a.pk], D, days=40) == {a.pk: None}


def test_export_columns_and_values(book):
    rows = export("--as-of", D.isoformat())

    assert rows[0][:8] == [
        "external_id",
        "name",
        "as_of",
        "score",
        "band",
        "coverage",
        "model",
        "delta_30d",
    ]
    by_id = {row[0]: row[:8] for row in rows[1:]}
    assert by_id == {
        "A-1": ["A-1", "Baseline on D-30", "2024-06-30", "72.5", "healthy", "0.75",
                "Default:1", "2.5"],
        "B-2": ["B-2", "Baseline 7 days older", "2024-06-30", "50.0", "neutral",
                "0.75", "Default:1", "-10.0"],
        "C-3": ["C-3", "Baseline 8 days older", "2024-06-30", "40.0", "neutral",
                "0.75", "Default:1", ""],
        "D-4": ["D-4", "Unscored now", "2024-06-30", "", "unscored", "0.4",
                "Default:1", ""],
        "E-5": ["E-5", "Unscored baseline", "2024-06-30", "65.0", "healthy",
                "0.75", "Default:1", ""],
        "F-6": ["F-6", "Baseline before D-30", "2024-06-30", "61.2", "healthy",
                "0.75", "Default:1", "2.3"],
    }  # fmt: skip
    assert {row[9] for row in rows[1:]} == {"csm@example.com"}


def test_export_defaults_to_the_latest_scored_date(book, default_model):
    later = Customer.objects.create(external_id="G-7", name="Scored later")
    snapshot(later, default_model, D + timedelta(days=1), 80.0)

    rows = export()

    assert [row[:3] for row in rows[1:]] == [["G-7", "Scored later", "2024-07-01"]]


def test_export_leaves_out_draft_snapshots(book, default_model):
    draft = ScoreModel.objects.create(name="Try", version=1, status="draft")
    snapshot(book["A-1"], draft, D, 10.0)
    snapshot(book["A-1"], draft, D + timedelta(days=3), 10.0)

    rows = export()

    by_id = {row[0]: row for row in rows[1:]}
    assert by_id["A-1"][:4] == ["A-1", "Baseline on D-30", "2024-06-30", "72.5"]
    assert len(by_id) == 6


def test_export_neutralises_formulas(default_model):
    texts = ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tTab", "\rReturn"]
    for number, text in enumerate(texts):
        customer = Customer.objects.create(
            external_id=f"{text}{number}", name=text, segment=text
        )
        snapshot(customer, default_model, D, 30.0)

    rows = export("--as-of", D.isoformat())

    names = sorted(row[1] for row in rows[1:])
    assert names == sorted("'" + text for text in texts)
    for row in rows[1:]:
        assert row[0].startswith("'") and row[8].startswith("'")


def test_export_keeps_negative_numbers_as_numbers(book):
    rows = export("--as-of", D.isoformat())

    by_id = {row[0]: row for row in rows[1:]}
    assert by_id["B-2"][7] == "-10.0"


def test_salesforce_format(book):
    rows = export("--as-of", D.isoformat(), "--format", "salesforce")

    assert rows[0] == [
        "Id",
        "Health_Score__c",
        "Health_Band__c",
        "Health_Score_Date__c",
        "Health_Score_Change_30d__c",
        "Health_Coverage__c",
        "Health_Model__c",
    ]
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id["A-1"] == ["A-1", "72.5", "healthy", "2024-06-30", "2.5", "75.0",
                       "Default:1"]  # fmt: skip


def test_xlsx_format(book, tmp_path, default_model):
    from openpyxl import load_workbook

    Customer.objects.filter(external_id="A-1").update(name="=cmd|' /C calc'!A0")
    path = tmp_path / "scores.xlsx"

    call_command(
        "export_scores", "--as-of", D.isoformat(), "--format", "xlsx", "-o", str(path),
        stdout=StringIO(),
    )  # fmt: skip

    sheet = load_workbook(path, read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:8] == (
        "external_id", "name", "as_of", "score", "band", "coverage", "model",
        "delta_30d",
    )  # fmt: skip
    by_id = {row[0]: row for row in rows[1:]}
    name, as_of, score = by_id["A-1"][1:4]
    # Spreadsheets have no dates, only date-times at midnight.
    assert (name, as_of.date(), score) == ("'=cmd|' /C calc'!A0", D, 72.5)
    assert by_id["B-2"][7] == -10.0


def test_writes_to_a_file(book, tmp_path):
    path = tmp_path / "scores.csv"
    out = StringIO()

    call_command("export_scores", "-o", str(path), stdout=out)

    assert "Exported 6 customers scored as of 2024-06-30" in out.getvalue()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 7


def test_export_without_scores_says_so(db):
    with pytest.raises(CommandError, match="no scores yet"):
        export()


def test_export_queries_do_not_grow_with_customers(book, default_model):
    with CaptureQueriesContext(connection) as few:
        export()
    for number in range(20):
        extra = Customer.objects.create(external_id=f"X-{number}", name="Extra")
        snapshot(extra, default_model, D, 50.0)
        snapshot(extra, default_model, D_MINUS_30, 40.0)

    with CaptureQueriesContext(connection) as many:
        rows = export()

    assert len(rows) == 27
    # The default date (finished runs, then the latest snapshot) and the rows.
    assert len(many) == len(few) == 3


def test_export_default_date_ignores_a_single_rescore_after_the_full_run(
    book, default_model
):
    JobRun.objects.create(
        kind=JobRun.Kind.SCORE_ALL,
        status=JobRun.Status.SUCCEEDED,
        params={"dates": [D.isoformat()]},
        total=6,
        done=6,
        finished_at=timezone.now(),
    )
    # One customer re-scored the next day after a logged interaction.
    snapshot(book["A-1"], default_model, D + timedelta(days=1), 74.0)

    rows = export()

    assert {row[2] for row in rows[1:]} == {D.isoformat()}
    assert len(rows) - 1 == 6
