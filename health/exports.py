"""Score exports: CSV, XLSX and a CSV for the Salesforce Data Loader.

Rows stream from one query, so an export of any size holds one chunk of
snapshots in memory. Text that a spreadsheet would run as a formula is
neutralised on the way out.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any

from health import selectors

FORMATS = ("csv", "xlsx", "salesforce")

# The first eight are the contract scripts rely on (DESIGN.md); more may
# follow them, never come before them.
COLUMNS = [
    "external_id",
    "name",
    "as_of",
    "score",
    "band",
    "coverage",
    "model",
    "delta_30d",
    "segment",
    "owner_email",
]

# The account id and the custom fields of the Account object that the Data
# Loader updates.
SALESFORCE_COLUMNS = [
    "Id",
    "Health_Score__c",
    "Health_Band__c",
    "Health_Score_Date__c",
    "Health_Score_Change_30d__c",
    "Health_Coverage__c",
    "Health_Model__c",
]

# Excel, LibreOffice and Google Sheets run a cell that starts with one of
# these as a formula; an apostrophe in front makes it plain text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

CHUNK_SIZE = 2000


def neutralise(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


@dataclass(frozen=True)
class ScoreRow:
    external_id: str
    name: str
    as_of: date
    score: float | None
    band: str
    coverage: float
    model: str
    delta_30d: float | None
    segment: str
    owner_email: str

    def cells(self) -> list[Any]:
        return [
            self.external_id,
            self.name,
            self.as_of,
            self.score,
            self.band,
            round(self.coverage, 4),
            self.model,
            self.delta_30d,
            self.segment,
            self.owner_email,
        ]

    def salesforce_cells(self) -> list[Any]:
        # Salesforce percent fields take 0-100, not a fraction.
        return [
            self.external_id,
            self.score,
            self.band,
            self.as_of,
            self.delta_30d,
            round(self.coverage * 100, 2),
            self.model,
        ]


def score_rows(as_of: date) -> Iterator[ScoreRow]:
    """One row per customer scored as of the date, by name. One query,
    streamed in chunks."""
    snapshots = selectors.with_baseline(
        selectors.latest_snapshots(as_of), as_of, 30, "score_30d_ago"
    ).order_by("customer__name", "customer__external_id")
    for snapshot in snapshots.iterator(chunk_size=CHUNK_SIZE):
        customer = snapshot.customer
        yield ScoreRow(
            external_id=customer.external_id,
            name=customer.name,
            as_of=snapshot.as_of,
            score=snapshot.score,
            band=snapshot.band,
            coverage=snapshot.coverage,
            model=snapshot.model.label,
            delta_30d=selectors.score_change(snapshot.score, snapshot.score_30d_ago),
            segment=customer.segment,
            owner_email=customer.owner.email if customer.owner else "",
        )


def _text(value: Any) -> str:
    """A cell for a CSV file: text neutralised, numbers and dates as is."""
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _xlsx_value(value: Any) -> Any:
    return neutralise(value) if isinstance(value, str) else value


def write_csv(rows: Iterator[ScoreRow], stream: IO[str], salesforce=False) -> int:
    writer = csv.writer(stream)
    writer.writerow(SALESFORCE_COLUMNS if salesforce else COLUMNS)
    count = 0
    for row in rows:
        cells = row.salesforce_cells() if salesforce else row.cells()
        writer.writerow([_text(cell) for cell in cells])
        count += 1
    return count


def write_xlsx(rows: Iterator[ScoreRow], path: Path) -> int:
    from openpyxl import Workbook

    # Write-only: rows go to a temporary file as they come, not into memory.
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Scores")
    sheet.append(COLUMNS)
    count = 0
    for row in rows:
        sheet.append([_xlsx_value(cell) for cell in row.cells()])
        count += 1
    workbook.save(path)
    return count


def export_scores(
    *, as_of: date, format: str, stream: IO[str] | None = None, path=None
) -> int:
    """Write the scores as of a date in a format to a text stream (csv,
    salesforce) or a file (xlsx); return the number of rows."""
    rows = score_rows(as_of)
    if format == "xlsx":
        if path is None:
            raise ValueError("an xlsx export needs a file path")
        return write_xlsx(rows, Path(path))
    if stream is None:
        raise ValueError("a csv export needs a stream")
    return write_csv(rows, stream, salesforce=format == "salesforce")
