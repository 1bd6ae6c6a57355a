"""Files and cells an import must refuse with a sentence, never a traceback:
numbers too large for their field, files that are not what their name says,
NUL characters, rows whose columns contradict each other or lie in the
future, dates the calendar lacks, date-times and unsaved formulas in
spreadsheets. Each case has a small file of its own, run through the command
and, where an admin uploads it, through the admin."""

import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from health.models import (
    Customer,
    Interaction,
    MetricReading,
    NpsResponse,
    Pulse,
    Ticket,
)

CUSTOMERS_HEADER = (
    "external_id,name,segment,arr,owner_email,customer_since,renewal_date,churned_on"
)
READINGS_HEADER = "customer,metric,value,observed_on"
UPLOAD_URL = "admin:health_import_upload"


def run_import(kind: str, path: Path, *flags: str) -> str:
    out = StringIO()
    call_command("import_data", kind, str(path), *flags, stdout=out, stderr=StringIO())
    return out.getvalue()


def failed_import(kind: str, path: Path, *flags: str) -> str:
    with pytest.raises(CommandError) as failure:
        run_import(kind, path, *flags)
    return str(failure.value)


def csv_file(folder: Path, name: str, *lines: str) -> Path:
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def xlsx(path: Path, rows: list[list], patch=None) -> Path:
    """An XLSX file of the rows; ``patch`` edits the sheet's XML."""
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


def upload(client, kind: str, content: bytes, name: str):
    data = {"kind": kind, "file": SimpleUploadedFile(name, content)}
    return client.post(reverse(UPLOAD_URL), data)


@pytest.fixture
def customers(db) -> dict[str, Customer]:
    return {
        "C-1": Customer.objects.create(external_id="C-1", name="Acme"),
        "C-2": Customer.objects.create(external_id="C-2", name="Globex"),
    }


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


# --- Numbers too large ------------------------------------------------------------


@pytest.mark.parametrize("arr", ["9" * 40, "1e30", "1000000000000"])
def test_an_arr_too_large_is_a_bad_row_naming_the_limit(tmp_path, db, arr):
    path = csv_file(tmp_path, "customers.csv", CUSTOMERS_HEADER, f"C-1,Acme,,{arr},,,,")

    message = failed_import("customers", path)

    shown = arr if len(arr) <= 40 else arr[:39] + "…"
    assert (
        f"line 2, column arr: '{shown}' is too large (at most 999,999,999,999.99)"
        in message
    )
    assert "finite" not in message
    assert Customer.objects.count() == 0


def test_an_arr_that_rounds_up_to_the_limit_is_too_large(tmp_path, db):
    path = csv_file(
        tmp_path, "customers.csv", CUSTOMERS_HEADER, "C-1,Acme,,999999999999.995,,,,"
    )

    message = failed_import("customers", path)

    assert "column arr: '999999999999.995' is too large" in message


def test_an_arr_too_large_is_a_form_error_in_the_admin(admin_client, db):
    content = f"{CUSTOMERS_HEADER}\nC-1,Acme,,1e30,,,,\n".encode()

    page = upload(admin_client, "customers", content, "accounts.csv")

    assert page.status_code == 200
    assert "line 2, column arr: &#x27;1e30&#x27; is too large" in (
        page.content.decode()
    )
    assert Customer.objects.count() == 0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("9" * 400, "is too large (at most about 1.8e308)"),
        ("1e999", "is too large (at most about 1.8e308)"),
        ("inf", "is not a finite number"),
        ("nan", "is not a number"),
    ],
)
def test_a_reading_beyond_a_float_says_why(tmp_path, customers, value, reason):
    path = csv_file(
        tmp_path,
        "readings.csv",
        READINGS_HEADER,
        f"C-1,it_ecosystem_fit,{value},2024-05-01",
    )

    message = failed_import("readings", path)

    assert "line 2, column value: '" in message
    assert reason in message
    assert len(message.splitlines()[1]) < 120


# --- Files that are not what their name says -------------------------------------


def test_a_csv_named_xlsx_is_not_a_workbook(tmp_path, customers):
    path = tmp_path / "readings.xlsx"
    path.write_text(f"{READINGS_HEADER}\nC-1,login_days_30d,3,2024-05-01\n")

    message = failed_import("readings", path)

    assert message == "readings.xlsx is not an XLSX workbook"


def test_a_zip_without_a_workbook_named_xlsx_is_not_a_workbook(tmp_path, customers):
    path = tmp_path / "readings.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")

    message = failed_import("readings", path)

    assert message == "readings.xlsx is not an XLSX workbook"


def test_a_csv_named_xlsx_is_a_form_error_in_the_admin(admin_client, customers):
    content = f"{READINGS_HEADER}\nC-1,login_days_30d,3,2024-05-01\n".encode()

    page = upload(admin_client, "readings", content, "May readings.xlsx")

    assert page.status_code == 200
    assert "May readings.xlsx is not an XLSX workbook" in page.content.decode()
    assert "token" not in page.context
    assert MetricReading.objects.count() == 0


def test_a_zip_named_csv_does_not_look_like_text(tmp_path, customers):
    path = xlsx(tmp_path / "readings.xlsx", [READINGS_HEADER.split(",")])
    renamed = path.rename(tmp_path / "readings.csv")

    message = failed_import("readings", renamed)

    assert message.startswith("readings.csv does not look like a text file")
    assert "ZIP archive" in message
    assert message.isprintable()


def test_a_binary_file_named_csv_gets_a_short_printable_error(tmp_path, customers):
    path = tmp_path / "readings.csv"
    path.write_bytes(bytes(range(256)) * 40)

    message = failed_import("readings", path)

    assert message.startswith("readings.csv does not look like a text file")
    assert message.isprintable()
    assert len(message) < 200


def test_a_header_with_control_characters_does_not_look_like_text(tmp_path, customers):
    path = tmp_path / "readings.csv"
    path.write_text(f"{READINGS_HEADER},\x1b[31mred\n", encoding="utf-8")

    message = failed_import("readings", path)

    assert message.startswith("readings.csv does not look like a text file")
    assert message.isprintable()


def test_an_unknown_header_is_shown_escaped_and_short(tmp_path, customers):
    junk = "\u200b" + "x" * 300
    path = tmp_path / "readings.csv"
    path.write_text(f"{READINGS_HEADER},{junk}\n", encoding="utf-8")

    message = failed_import("readings", path)

    assert "readings.csv, line 1: the header does not match" in message
    unknown = next(line for line in message.splitlines() if "unknown" in line)
    assert unknown == "unknown columns: '\\u200b" + "x" * 38 + "…'"


def test_an_error_names_the_uploaded_file_not_its_temporary_copy(
    admin_client, customers
):
    page = upload(admin_client, "readings", b"customer,value\nC-1,3\n", "may.csv")

    content = page.content.decode()
    assert "may.csv, line 1: the header does not match" in content
    assert "upload.csv" not in content


# --- NUL characters ----------------------------------------------------------------


def test_a_nul_character_in_a_cell_is_a_bad_row(tmp_path, db):
    path = tmp_path / "customers.csv"
    path.write_bytes(
        f"{CUSTOMERS_HEADER}\nC-1,Ac\x00me,,,,,,\nC-2,Globex,,,,,,\n".encode()
    )

    message = failed_import("customers", path)

    assert "line 2, column name: contains a NUL character" in message
    assert Customer.objects.count() == 0

    out = run_import("customers", path, "--skip-bad-rows")

    assert "1 new, 0 updated, 0 unchanged, 1 skipped" in out
    assert list(Customer.objects.values_list("name", flat=True)) == ["Globex"]


# --- Rules across columns ---------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("C-1,Acme,,,,2024-05-01,,2024-04-30", "column churned_on: is before"),
        ("C-1,Acme,,,,2024-05-01,2024-04-30,", "column renewal_date: is before"),
        ("C-1,Acme,,-5,,,,", "column arr: '-5' is negative"),
    ],
)
def test_a_customer_whose_columns_contradict_is_a_bad_row(tmp_path, db, row, expected):
    path = csv_file(tmp_path, "customers.csv", CUSTOMERS_HEADER, row)

    message = failed_import("customers", path)

    assert f"line 2, {expected}" in message
    assert Customer.objects.count() == 0


def test_a_customer_with_dates_in_order_lands(tmp_path, db):
    path = csv_file(
        tmp_path,
        "customers.csv",
        CUSTOMERS_HEADER,
        "C-1,Acme,,0,,2024-05-01,2024-05-01,2025-01-01",
        "C-2,Globex,,10,,,2020-01-01,",
    )

    run_import("customers", path)

    assert Customer.objects.get(external_id="C-1").churned_on == date(2025, 1, 1)
    assert Customer.objects.get(external_id="C-2").arr == Decimal("10.00")


@pytest.mark.parametrize(
    ("kind", "header", "row", "column", "model"),
    [
        (
            "nps",
            "customer,contact,score,responded_at,comment",
            "C-1,ann@acme.test,9,{moment},",
            "responded_at",
            NpsResponse,
        ),
        (
            "interactions",
            "customer,csm_email,kind,occurred_at,sentiment,summary",
            "C-1,csm@example.com,call,{moment},1,",
            "occurred_at",
            Interaction,
        ),
        (
            "pulses",
            "customer,csm_email,rating,entered_at,note",
            "C-1,csm@example.com,4,{moment},",
            "entered_at",
            Pulse,
        ),
        (
            "tickets",
            "external_id,customer,opened_at,closed_at,priority,escalated,satisfaction",
            "T-1,C-1,{moment},,,no,",
            "opened_at",
            Ticket,
        ),
    ],
)
def test_a_moment_in_the_future_is_a_bad_row(
    tmp_path, customers, csm, kind, header, row, column, model
):
    now = datetime.now(tz=UTC).replace(microsecond=0)
    future = (now + timedelta(days=2)).isoformat()
    soon = (now + timedelta(hours=20)).isoformat()
    path = csv_file(tmp_path, f"{kind}.csv", header, row.format(moment=future))

    message = failed_import(kind, path)

    assert f"line 2, column {column}: '" in message
    assert "' is in the future" in message
    assert model.objects.count() == 0

    # A day of slack covers clocks and time zones.
    path = csv_file(tmp_path, f"{kind}.csv", header, row.format(moment=soon))
    run_import(kind, path)
    assert model.objects.count() == 1


@pytest.mark.parametrize(
    ("metric", "value", "reason"),
    [
        ("active_user_ratio", "1.2", "'1.2' is not between 0 and 1"),
        ("feature_adoption_ratio", "-0.1", "'-0.1' is not between 0 and 1"),
        ("login_days_30d", "-3", "'-3' is not between 0 and 31"),
        ("login_days_30d", "32", "'32' is not between 0 and 31"),
        ("product_certifications", "-1", "'-1' is negative"),
    ],
)
def test_a_reading_out_of_its_units_range_is_a_bad_row(
    tmp_path, customers, metric, value, reason
):
    path = csv_file(
        tmp_path, "readings.csv", READINGS_HEADER, f"C-1,{metric},{value},2024-05-01"
    )

    message = failed_import("readings", path)

    assert f"line 2, column value: {reason}" in message
    assert MetricReading.objects.count() == 0


def test_readings_at_the_ends_of_their_range_land(tmp_path, customers):
    path = csv_file(
        tmp_path,
        "readings.csv",
        READINGS_HEADER,
        "C-1,active_user_ratio,0,2024-05-01",
        "C-2,active_user_ratio,1,2024-05-01",
        "C-1,login_days_30d,31,2024-05-01",
        "C-1,it_ecosystem_fit,-3,2024-05-01",
    )

    run_import("readings", path)

    assert MetricReading.objects.count() == 4


# --- Dates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-02-30", "'2026-02-30' is not a date: February 2026 has 28 days, not 30"),
        ("2024-02-30", "'2024-02-30' is not a date: February 2024 has 29 days, not 30"),
        ("2026-13-01", "'2026-13-01' is not a date: there is no month 13"),
        ("2026-04-00", "'2026-04-00' is not a date: there is no day 0"),
    ],
)
def test_a_day_the_calendar_lacks_is_named(tmp_path, customers, value, reason):
    path = csv_file(
        tmp_path, "readings.csv", READINGS_HEADER, f"C-1,login_days_30d,3,{value}"
    )

    message = failed_import("readings", path)

    assert f"line 2, column observed_on: {reason}" in message


def test_a_day_the_calendar_lacks_in_a_date_time_is_named(tmp_path, customers, csm):
    path = csv_file(
        tmp_path,
        "pulses.csv",
        "customer,csm_email,rating,entered_at,note",
        "C-1,csm@example.com,4,2024-02-30T10:00:00,",
    )

    message = failed_import("pulses", path)

    assert "'2024-02-30T10:00:00' is not a date: February 2024 has 29 days" in message


def test_a_day_first_date_the_calendar_lacks_is_named(tmp_path, customers):
    path = csv_file(
        tmp_path, "readings.csv", READINGS_HEADER, "C-1,login_days_30d,3,31/04/2024"
    )

    message = failed_import("readings", path, "--date-order", "dmy")

    assert (
        "'31/04/2024' is not a date: April 2024 has 30 days, not 31 (day first, as set)"
        in message
    )


def test_xlsx_date_times_in_a_date_column(tmp_path, customers):
    path = xlsx(
        tmp_path / "readings.xlsx",
        [
            READINGS_HEADER.split(","),
            ["C-1", "login_days_30d", 1, datetime(2026, 5, 1)],  # noqa: DTZ001
            ["C-2", "login_days_30d", 2, datetime(2026, 5, 1, 13)],  # noqa: DTZ001
        ],
    )

    message = failed_import("readings", path)

    assert (
        "line 3, column observed_on: '2026-05-01T13:00:00' is a date-time, "
        "expected a date" in message
    )
    assert "line 2" not in message


def test_a_midnight_date_time_text_in_a_date_column_is_its_date(tmp_path, customers):
    path = csv_file(
        tmp_path,
        "readings.csv",
        READINGS_HEADER,
        "C-1,login_days_30d,3,2026-05-01T00:00:00",
    )

    run_import("readings", path)

    assert MetricReading.objects.get().observed_on == date(2026, 5, 1)


def test_an_xlsx_formula_with_no_saved_value_says_so(tmp_path, customers):
    # openpyxl saves a formula without its value, as any program that does
    # not calculate does.
    path = xlsx(
        tmp_path / "readings.xlsx",
        [
            READINGS_HEADER.split(","),
            ["C-1", "login_days_30d", "=10+4", "2024-05-01"],
            ["C-2", "login_days_30d", 3, "2024-05-01"],
        ],
    )

    message = failed_import("readings", path)

    assert (
        "line 2, column value: is a formula with no saved value (open and save "
        "the file in a spreadsheet program)" in message
    )
    assert "is required" not in message


# --- The command's help and its rejects file ----------------------------------------


def test_the_help_names_the_thousands_separators_readably(capsys):
    with pytest.raises(SystemExit):
        call_command("import_data", "--help")
    text = " ".join(capsys.readouterr().out.split())

    assert "--thousands-separator SEP" in text
    assert "{,,." not in text
    assert "comma (',')" in text
    assert "space (' ')" in text


def test_a_thousands_separator_can_be_named(tmp_path, customers):
    path = csv_file(
        tmp_path, "customers.csv", CUSTOMERS_HEADER, 'C-1,Acme,,"1 234 567",,,,'
    )

    run_import("customers", path, "--thousands-separator", "space")

    assert Customer.objects.get(external_id="C-1").arr == Decimal("1234567.00")


def test_rejects_land_where_the_help_says(tmp_path, customers, capsys):
    with pytest.raises(SystemExit):
        call_command("import_data", "--help")
    text = " ".join(capsys.readouterr().out.split())
    path = xlsx(
        tmp_path / "skip.xlsx",
        [READINGS_HEADER.split(","), ["C-1", "login_days_30d", "x", "2024-05-01"]],
    )

    out = run_import("readings", path, "--skip-bad-rows")

    assert "NAME.rejects.csv" in text
    assert "readings.xlsx -> readings.rejects.csv" in text
    assert f"Bad rows written to {tmp_path / 'skip.rejects.csv'}" in out
    assert (tmp_path / "skip.rejects.csv").is_file()


# --- The admin's preview ------------------------------------------------------------


def test_the_preview_names_metrics_by_key(admin_client, customers):
    content = f"{READINGS_HEADER}\nC-1,login_days_30d,12,2024-05-01\n".encode()

    page = upload(admin_client, "readings", content, "readings.csv")

    row = page.context["report"].preview[0]
    assert row == {
        "customer": "Acme",
        "metric": "login_days_30d",
        "value": "12.0",
        "observed_on": "2024-05-01",
    }
    assert "<td>login_days_30d</td>" in page.content.decode()


def test_the_preview_names_users_by_email(admin_client, customers, csm):
    content = (
        b"customer,csm_email,rating,entered_at,note\n"
        b"C-1,csm@example.com,4,2024-05-01T10:00:00,\n"
    )

    page = upload(admin_client, "pulses", content, "pulses.csv")

    assert page.context["report"].preview[0]["csm_email"] == "csm@example.com"
