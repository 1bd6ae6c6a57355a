"""Files as other tools and spreadsheets leave them: encodings, delimiters,
date orders, decimal commas, blank and phantom rows, formulas, words for
"missing", and customer references that match nothing or several. Each case
has a small file of its own."""

import time
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from health.models import Customer, ImportProfile, MetricReading, Ticket

CUSTOMERS_HEADER = (
    "external_id,name,segment,arr,owner_email,customer_since,renewal_date,churned_on"
)
READINGS_HEADER = "customer,metric,value,observed_on"


def run_import(kind: str, path: Path, *flags: str) -> str:
    out = StringIO()
    call_command("import_data", kind, str(path), *flags, stdout=out, stderr=StringIO())
    return out.getvalue()


def failed_import(kind: str, path: Path, *flags: str) -> str:
    with pytest.raises(CommandError) as failure:
        run_import(kind, path, *flags)
    return str(failure.value)


def write_bytes(folder: Path, name: str, text: str, encoding: str) -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def names() -> list[str]:
    return list(Customer.objects.order_by("external_id").values_list("name", flat=True))


def observed() -> list[tuple[str, float, date]]:
    return list(
        MetricReading.objects.order_by(
            "customer__external_id", "observed_on"
        ).values_list("customer__external_id", "value", "observed_on")
    )


@pytest.fixture
def customers(db) -> dict[str, Customer]:
    return {
        "C-1": Customer.objects.create(external_id="C-1", name="Acme"),
        "C-2": Customer.objects.create(external_id="C-2", name="Globex"),
    }


def xlsx(path: Path, rows: list[list], patch=None) -> Path:
    """An XLSX file of the rows; ``patch`` edits the sheet's XML, for what
    openpyxl will not write (a formula's cached value, a false size)."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    if patch is None:
        return path

    member = "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(path) as original:
        parts = {name: original.read(name) for name in original.namelist()}
    parts[member] = patch(parts[member].decode()).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as patched:
        for name, data in parts.items():
            patched.writestr(name, data)
    return path


# --- Encodings ----------------------------------------------------------------


def test_utf8_with_a_byte_order_mark(tmp_path, customers):
    path = write_bytes(
        tmp_path,
        "customers.csv",
        f"{CUSTOMERS_HEADER}\nC-1,Café Müller,,,,,,\n",
        "utf-8-sig",
    )

    out = run_import("customers", path)

    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert "Read customers.csv as UTF-8 text, comma-separated." in out
    assert names() == ["Café Müller", "Globex"]


def test_windows_1252_is_detected(tmp_path, customers):
    # 0x80 is the euro sign in Windows-1252 and a control character in
    # Latin-1, so only the right guess gives back "€".
    path = write_bytes(
        tmp_path,
        "customers.csv",
        f"{CUSTOMERS_HEADER}\nC-1,Straße € “Süd”,,,,,,\n",
        "cp1252",
    )

    out = run_import("customers", path)

    assert "as Windows-1252 text" in out
    assert names() == ["Straße € “Süd”", "Globex"]


def test_latin_1_is_detected(tmp_path, customers):
    # 0x81 is undefined in Windows-1252: a file holding it is Latin-1.
    path = write_bytes(
        tmp_path,
        "customers.csv",
        f"{CUSTOMERS_HEADER}\nC-1,Zürich Ré\x81,,,,,,\n",
        "latin-1",
    )

    out = run_import("customers", path)

    assert "as Latin-1 text" in out
    assert names() == ["Zürich Ré\x81", "Globex"]


def test_an_encoding_can_be_named(tmp_path, customers):
    path = write_bytes(
        tmp_path, "customers.csv", f"{CUSTOMERS_HEADER}\nC-1,Søren,,,,,,\n", "latin-1"
    )

    run_import("customers", path, "--encoding", "latin-1")

    assert names() == ["Søren", "Globex"]


def test_a_wrong_encoding_is_an_error_not_garbage(tmp_path, customers):
    path = write_bytes(
        tmp_path, "customers.csv", f"{CUSTOMERS_HEADER}\nC-1,Søren,,,,,,\n", "latin-1"
    )

    message = failed_import("customers", path, "--encoding", "utf-8")

    assert "not utf-8 text on line 2" in message
    assert "--encoding" in message
    assert names() == ["Acme", "Globex"]


def test_an_unknown_encoding_is_an_error(tmp_path, customers):
    path = write_bytes(tmp_path, "c.csv", f"{CUSTOMERS_HEADER}\n", "utf-8")

    assert "unknown encoding 'klingon'" in failed_import(
        "customers", path, "--encoding", "klingon"
    )


# --- Delimiters ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("delimiter", "described"),
    [(",", "comma"), (";", "semicolon"), ("\t", "tab")],
)
def test_delimiters_are_detected(tmp_path, customers, delimiter, described):
    lines = [
        READINGS_HEADER,
        "C-1,login_days_30d,12,2024-05-01",
        'C-2,login_days_30d,3,"2024-05-02"',
    ]
    text = "\r\n".join(line.replace(",", delimiter) for line in lines) + "\r\n"
    path = write_bytes(tmp_path, "readings.csv", text, "utf-8")

    out = run_import("readings", path)

    assert f"{described}-separated" in out
    assert observed() == [
        ("C-1", 12.0, date(2024, 5, 1)),
        ("C-2", 3.0, date(2024, 5, 2)),
    ]


# --- Dates --------------------------------------------------------------------


def test_day_first_dates_that_the_file_proves(tmp_path, customers):
    path = write_bytes(
        tmp_path,
        "readings.csv",
        f"{READINGS_HEADER}\n"
        "C-1,login_days_30d,1,03/04/2024\n"
        "C-1,login_days_30d,2,13/04/2024\n",
        "utf-8",
    )

    out = run_import("readings", path)

    assert "dates day first" in out
    assert [row[2] for row in observed()] == [date(2024, 4, 3), date(2024, 4, 13)]


def test_month_first_dates_that_the_file_proves(tmp_path, customers):
    path = write_bytes(
        tmp_path,
        "readings.csv",
        f"{READINGS_HEADER}\n"
        "C-1,login_days_30d,1,03/04/2024\n"
        "C-1,login_days_30d,2,04/13/2024\n",
        "utf-8",
    )

    run_import("readings", path)

    assert [row[2] for row in observed()] == [date(2024, 3, 4), date(2024, 4, 13)]


def test_an_ambiguous_file_is_an_error_that_says_so(tmp_path, customers):
    path = write_bytes(
        tmp_path,
        "readings.csv",
        f"{READINGS_HEADER}\n"
        "C-1,login_days_30d,1,03/04/2024\n"
        "C-1,login_days_30d,2,05/06/2024\n",
        "utf-8",
    )

    message = failed_import("readings", path)

    assert "the dates are ambiguous: '03/04/2024' (line 2)" in message
    assert "--date-order dmy or mdy" in message
    assert MetricReading.objects.count() == 0


@pytest.mark.parametrize(
    ("order", "expected"),
    [("dmy", date(2024, 4, 3)), ("mdy", date(2024, 3, 4))],
)
def test_the_date_order_can_be_given(tmp_path, customers, order, expected):
    path = write_bytes(
        tmp_path,
        "readings.csv",
        f"{READINGS_HEADER}\nC-1,login_days_30d,1,03.04.2024\n",
        "utf-8",
    )

    run_import("readings", path, "--date-order", order)

    assert observed() == [("C-1", 1.0, expected)]


def test_a_file_with_both_orders_is_an_error(tmp_path, customers):
    path = write_bytes(
        tmp_path,
        "readings.csv",
        f"{READINGS_HEADER}\n"
        "C-1,login_days_30d,1,13/04/2024\n"
        "C-1,login_days_30d,2,04/14/2024\n",
        "utf-8",
    )

    message = failed_import("readings", path)

    assert "day first on line 2 ('13/04/2024')" in message
    assert "month first on line 3 ('04/14/2024')" in message


def test_a_profile_gives_the_date_order_of_date_times(tmp_path, customers):
    Customer.objects.filter(external_id="C-1").update(support_id="req-1")
    ImportProfile.objects.create(
        name="helpdesk",
        kind="tickets",
        columns={"external_id": "Ticket", "customer": "Requester", "opened_at": "At"},
        customer_field="support_id",
        date_order="mdy",
    )
    path = write_bytes(
        tmp_path,
        "tickets.csv",
        "Ticket,Requester,At\nT-1,req-1,04/03/2024 14:05\nT-2,req-1,04/05/2024\n",
        "utf-8",
    )

    run_import("helpdesk", path)

    assert list(Ticket.objects.order_by("external_id").values_list("opened_at")) == [
        (datetime(2024, 4, 3, 14, 5, tzinfo=UTC),),
        (datetime(2024, 4, 5, tzinfo=UTC),),
    ]


def test_excel_serial_dates_in_xlsx(tmp_path, customers):
    # 45413 is 2024-05-01 in Excel's 1900 date system; a cell formatted as a
    # date arrives as a date, one left as a number arrives as its serial.
    path = xlsx(
        tmp_path / "readings.xlsx",
        [
            ["customer", "metric", "value", "observed_on"],
            ["C-1", "login_days_30d", 1, 45413],
            ["C-1", "login_days_30d", 2, datetime(2024, 5, 2)],  # noqa: DTZ001
        ],
    )

    run_import("readings", path)

    assert [row[2] for row in observed()] == [date(2024, 5, 1), date(2024, 5, 2)]


def test_a_serial_in_a_csv_file_is_not_a_date(tmp_path, customers):
    path = write_bytes(
        tmp_path, "r.csv", f"{READINGS_HEADER}\nC-1,login_days_30d,1,45413\n", "utf-8"
    )

    message = failed_import("readings", path)

    assert "line 2, column observed_on: '45413' is not a date" in message


# --- Numbers ------------------------------------------------------------------


def test_decimal_commas_and_thousands_when_the_import_says_so(tmp_path, customers):
    path = write_bytes(
        tmp_path,
        "customers.csv",
        CUSTOMERS_HEADER.replace(",", ";")
        + "\nC-1;Acme;;1.234.567,89;;;;\nC-2;Globex;;12,5;;;;\n",
        "utf-8",
    )

    run_import("customers", path, "--decimal-comma", "--thousands-separator", ".")

    assert list(Customer.objects.order_by("external_id").values_list("arr")) == [
        (Decimal("1234567.89"),),
        (Decimal("12.50"),),
    ]


def test_thousands_separators_with_a_decimal_point(tmp_path, customers):
    path = write_bytes(
        tmp_path,
        "customers.csv",
        f'{CUSTOMERS_HEADER}\nC-1,Acme,,"120,000.50",,,,\nC-2,Globex,,"1,20",,,,\n',
        "utf-8",
    )

    message = failed_import("customers", path, "--thousands-separator", ",")

    assert "line 3, column arr: '1,20' is not a number with thousands" in message

    path.write_text(path.read_text().replace('"1,20"', "7"), encoding="utf-8")
    run_import("customers", path, "--thousands-separator", ",")
    assert Customer.objects.get(external_id="C-1").arr == Decimal("120000.50")


def test_a_decimal_comma_without_the_setting_is_an_error_with_a_hint(
    tmp_path, customers
):
    path = write_bytes(
        tmp_path,
        "readings.csv",
        f'{READINGS_HEADER}\nC-1,active_user_ratio,"0,5",2024-05-01\n',
        "utf-8",
    )

    message = failed_import("readings", path)

    assert "line 2, column value: '0,5' is not a number (a decimal comma" in message


# --- Blank, phantom and formula cells -----------------------------------------


def test_blank_lines_and_trailing_empty_rows_are_ignored(tmp_path, customers):
    path = write_bytes(
        tmp_path,
        "readings.csv",
        f"{READINGS_HEADER}\r\n"
        "\r\n"
        "C-1,login_days_30d,1,2024-05-01\r\n"
        "   \r\n"
        "C-1,login_days_30d,x,2024-05-02\r\n"
        ",,,\r\n"
        ",,,\r\n"
        "\r\n",
        "utf-8",
    )

    message = failed_import("readings", path)

    # Blank lines still count, so the line named is the line in the file.
    assert "1 bad row;" in message
    assert "line 5, column value: 'x' is not a number" in message


def test_an_xlsx_sheet_claiming_a_million_rows_reads_fast(tmp_path, customers):
    path = xlsx(
        tmp_path / "readings.xlsx",
        [
            ["customer", "metric", "value", "observed_on"],
            ["C-1", "login_days_30d", 1, "2024-05-01"],
            [],
            ["C-2", "login_days_30d", 2, "2024-05-01"],
        ],
        # What a sheet formatted down to its last row says about itself.
        patch=lambda xml: xml.replace(
            '<dimension ref="A1:D4" />', ('<dimension ref="A1:XFD1048576" />')
        ),
    )
    from openpyxl import load_workbook

    claimed = load_workbook(path, read_only=True).worksheets[0].max_row
    started = time.monotonic()

    out = run_import("readings", path)

    assert claimed == 1_048_576
    assert time.monotonic() - started < 5
    assert "2 new, 0 updated, 0 unchanged, 0 skipped" in out


def test_a_formula_imports_its_value_never_its_text(tmp_path, customers):
    # Excel saves a formula with its last value; openpyxl writes none, so the
    # value is put in as Excel would have.
    path = xlsx(
        tmp_path / "readings.xlsx",
        [
            ["customer", "metric", "value", "observed_on"],
            ["C-1", "login_days_30d", "=10+4", "2024-05-01"],
        ],
        patch=lambda xml: xml.replace("<f>10+4</f><v />", "<f>10+4</f><v>14</v>"),
    )

    run_import("readings", path)

    assert observed() == [("C-1", 14.0, date(2024, 5, 1))]


# --- Missing values -----------------------------------------------------------


def test_words_for_missing_where_the_import_allows(tmp_path, customers):
    path = write_bytes(
        tmp_path,
        "tickets.csv",
        "external_id,customer,opened_at,closed_at,priority,escalated,satisfaction\n"
        "T-1,C-1,2024-05-01T08:00,NA,N/A,-,null\n"
        "T-2,C-1,2024-05-01T09:00,,,,\n",
        "utf-8",
    )

    message = failed_import("tickets", path)
    assert "line 2, column closed_at: 'NA' is not an ISO 8601 date-time" in message

    run_import("tickets", path, "--missing-values", "NA,N/A,-,null")

    rows = Ticket.objects.order_by("external_id").values_list(
        "closed_at", "priority", "escalated", "satisfaction"
    )
    assert list(rows) == [(None, "", False, None), (None, "", False, None)]


def test_a_missing_word_in_a_required_column_is_required(tmp_path, customers):
    path = write_bytes(
        tmp_path,
        "readings.csv",
        f"{READINGS_HEADER}\nC-1,login_days_30d,N/A,2024-05-01\n",
        "utf-8",
    )

    message = failed_import("readings", path, "--missing-values", "N/A")

    assert "line 2, column value: is required" in message


# --- Customer references --------------------------------------------------------


def test_a_reference_to_no_customer_or_several_is_an_error_per_row(tmp_path, customers):
    Customer.objects.filter(external_id="C-1").update(support_id="req-1")
    Customer.objects.filter(external_id="C-2").update(support_id="req-2")
    Customer.objects.create(external_id="C-3", name="Initech", support_id="req-2")
    ImportProfile.objects.create(
        name="helpdesk",
        kind="tickets",
        columns={"external_id": "Id", "customer": "Requester", "opened_at": "At"},
        customer_field="support_id",
    )
    path = write_bytes(
        tmp_path,
        "tickets.csv",
        "Id,Requester,At\n"
        "T-1,req-1,2024-05-01\n"
        "T-2,req-2,2024-05-01\n"
        "T-3,req-9,2024-05-01\n"
        "T-4,req-2,2024-05-02\n",
        "utf-8",
    )

    message = failed_import("helpdesk", path)

    assert "3 bad rows;" in message
    assert (
        "line 3, column customer: more than one customer has support desk id 'req-2'"
        in message
    )
    assert "line 4, column customer: no customer has support desk id 'req-9'" in (
        message
    )
    assert "line 5, column customer: more than one customer" in message
    assert Ticket.objects.count() == 0


def test_customers_by_name_ignore_case(tmp_path, customers):
    ImportProfile.objects.create(
        name="usage",
        kind="readings",
        columns={
            "customer": "Account",
            "metric": "Metric",
            "value": "Value",
            "observed_on": "Day",
        },
        customer_field="name",
    )
    path = write_bytes(
        tmp_path,
        "usage.csv",
        "Account,Metric,Value,Day,Ignored\n ACME ,login_days_30d,3,2024-05-01,x\n",
        "utf-8",
    )

    run_import("usage", path)

    assert observed() == [("C-1", 3.0, date(2024, 5, 1))]
