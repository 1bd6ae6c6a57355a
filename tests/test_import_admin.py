"""The admin's import page (preview = dry run, then the same importer as the
command), its exports through django-import-export, undoing a batch, and
the import profile form."""

from datetime import date
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from health import jobs
from health.models import (
    Customer,
    ImportBatch,
    ImportProfile,
    MetricReading,
)

READINGS = "customer,metric,value,observed_on\n"
UPLOAD_URL = "admin:health_import_upload"


@pytest.fixture
def customers(db):
    return {
        "C-1": Customer.objects.create(external_id="C-1", name="Acme"),
        "C-2": Customer.objects.create(external_id="C-2", name="Globex"),
    }


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def rescore_calls(monkeypatch) -> list[list[int]]:
    calls = []
    monkeypatch.setattr(
        jobs, "request_rescore", lambda ids, as_of=None: calls.append(sorted(ids))
    )
    return calls


def upload(client, kind: str, text: str, name="readings.csv", skip=False):
    data = {"kind": kind, "file": SimpleUploadedFile(name, text.encode())}
    if skip:
        data["skip_bad_rows"] = "on"
    return client.post(reverse(UPLOAD_URL), data)


def test_the_changelist_has_import_and_export_buttons(admin_client):
    page = admin_client.get(reverse("admin:health_importbatch_changelist"))

    assert reverse(UPLOAD_URL) in page.content.decode()
    assert reverse("admin:health_import_export") in page.content.decode()


def test_a_preview_saves_nothing_then_the_import_lands(
    admin_client, admin_user, customers, rescore_calls
):
    text = (
        READINGS + "C-1,login_days_30d,12,2024-05-01\nC-2,login_days_30d,3,2024-05-01\n"
    )

    preview = upload(admin_client, "readings", text)

    assert preview.status_code == 200
    assert "2 new, 0 updated, 0 unchanged, 0 skipped" in preview.content.decode()
    assert "<td>Acme</td>" in preview.content.decode()
    assert MetricReading.objects.count() == 0
    assert ImportBatch.objects.count() == 0
    assert rescore_calls == []

    done = admin_client.post(reverse(UPLOAD_URL), {"token": preview.context["token"]})

    batch = ImportBatch.objects.get()
    assert done.url == reverse("admin:health_importbatch_change", args=[batch.pk])
    assert (batch.file_name, batch.created_by, batch.rows_new) == (
        "readings.csv",
        admin_user,
        2,
    )
    assert MetricReading.objects.count() == 2
    assert rescore_calls == [sorted(c.pk for c in customers.values())]

    # The token is spent: a second click imports nothing more.
    admin_client.post(reverse(UPLOAD_URL), {"token": preview.context["token"]})
    assert ImportBatch.objects.count() == 1


def test_a_bad_file_lists_its_rows_and_offers_nothing_to_import(
    admin_client, customers
):
    text = (
        READINGS + "C-1,login_days_30d,12,2024-05-01\nC-9,login_days_30d,x,2024-05-01\n"
    )

    page = upload(admin_client, "readings", text)

    content = page.content.decode()
    assert "1 bad row;" in content
    assert "line 3, column customer: no customer has external id &#x27;C-9&#x27;" in (
        content
    )
    assert "line 3, column value: &#x27;x&#x27; is not a number" in content
    assert "token" not in page.context
    assert MetricReading.objects.count() == 0


def test_skipping_bad_rows_gives_them_back_to_download(
    admin_client, customers, rescore_calls
):
    text = (
        READINGS + "C-1,login_days_30d,12,2024-05-01\nC-9,login_days_30d,1,2024-05-01\n"
    )
    preview = upload(admin_client, "readings", text, skip=True)
    assert "1 new, 0 updated, 0 unchanged, 1 skipped" in preview.content.decode()

    admin_client.post(reverse(UPLOAD_URL), {"token": preview.context["token"]})
    rejects = admin_client.get(
        reverse("admin:health_import_rejects", args=[preview.context["token"]])
    )

    assert MetricReading.objects.count() == 1
    assert rejects.content.decode().splitlines() == [
        "customer,metric,value,observed_on,line,reason",
        "C-9,login_days_30d,1,2024-05-01,3,customer: no customer has external id 'C-9'",
    ]


def test_a_profile_can_be_chosen_for_an_upload(admin_client, customers):
    Customer.objects.filter(external_id="C-1").update(support_id="77")
    text = "Id,Requester id,Created at,Solved at,Priority,Satisfaction Score\r\n"
    text += "9,77,2023-04-08 20:52:00,1900-01-01 00:00:00,Urgent,Offered\r\n"

    preview = upload(admin_client, "zendesk-explore-tickets", text, "tickets.csv")

    content = preview.content.decode()
    assert "profile zendesk-explore-tickets" in content
    assert "1 new, 0 updated, 0 unchanged, 0 skipped" in content
    assert "<td>urgent</td>" in content


def test_a_file_that_is_not_csv_or_xlsx_is_refused(admin_client, customers):
    page = upload(admin_client, "readings", "x", name="readings.pdf")

    assert "not a CSV or XLSX file" in page.content.decode()


def test_someone_without_the_admin_role_cannot_upload(client, manager):
    client.force_login(manager)

    page = client.get(reverse(UPLOAD_URL))

    assert page.status_code == 302
    assert "login" in page.url


@pytest.mark.parametrize("kind", ["readings", "customers"])
def test_an_export_imports_again_unchanged(admin_client, customers, tmp_path, kind):
    # A negative reading (of a score, which may be negative) must leave the
    # export as a number, not as text neutralised against formulas.
    MetricReading.objects.create(
        customer=customers["C-1"],
        metric_id=MetricReading._meta.get_field("metric")
        .related_model.objects.get(key="it_ecosystem_fit")
        .pk,
        value=-3,
        observed_on=date(2024, 5, 1),
    )
    Customer.objects.filter(external_id="C-2").update(name="=HYPERLINK(1)")

    response = admin_client.post(
        reverse("admin:health_import_export"), {"kind": kind, "format": "csv"}
    )

    assert response["Content-Disposition"].startswith(f'attachment; filename="{kind}-')
    text = response.content.decode()
    path = tmp_path / f"{kind}.csv"
    path.write_text(text, encoding="utf-8")
    if kind == "customers":
        assert "'=HYPERLINK(1)" in text
        return
    assert text.splitlines() == [
        "customer,metric,value,observed_on",
        "C-1,it_ecosystem_fit,-3.0,2024-05-01",
    ]
    out = StringIO()
    call_command("import_data", kind, str(path), stdout=out)
    assert "0 new, 0 updated, 1 unchanged, 0 skipped" in out.getvalue()


def test_an_xlsx_export(admin_client, customers):
    from io import BytesIO

    from openpyxl import load_workbook

    response = admin_client.post(
        reverse("admin:health_import_export"), {"kind": "customers", "format": "xlsx"}
    )

    sheet = load_workbook(BytesIO(response.content)).active
    assert [c.value for c in sheet[1]][:2] == ["external_id", "name"]
    assert sheet.max_row == 3


def test_undo_deletes_what_a_batch_created_and_keeps_what_it_updated(
    admin_client, customers, tmp_path, rescore_calls
):
    first = tmp_path / "first.csv"
    first.write_text(READINGS + "C-1,login_days_30d,1,2024-05-01\n")
    second = tmp_path / "second.csv"
    second.write_text(
        READINGS + "C-1,login_days_30d,5,2024-05-01\nC-2,login_days_30d,2,2024-05-01\n"
    )
    call_command("import_data", "readings", str(first), stdout=StringIO())
    call_command("import_data", "readings", str(second), stdout=StringIO())
    older, newer = ImportBatch.objects.order_by("pk")
    rescore_calls.clear()

    admin_client.post(
        reverse("admin:health_importbatch_changelist"),
        {"action": "undo_batches", "_selected_action": [newer.pk]},
    )

    assert list(ImportBatch.objects.all()) == [older]
    assert list(
        MetricReading.objects.values_list("customer__external_id", "value", "batch")
    ) == [("C-1", 5.0, older.pk)]
    assert rescore_calls == [[customers["C-2"].pk]]


def test_undo_refuses_a_batch_of_customers(admin_client, db, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(
        "external_id,name,segment,arr,owner_email,customer_since,renewal_date,"
        "churned_on\nC-1,Acme,,,,,,\n"
    )
    call_command("import_data", "customers", str(path), stdout=StringIO())
    batch = ImportBatch.objects.get()

    page = admin_client.post(
        reverse("admin:health_importbatch_changelist"),
        {"action": "undo_batches", "_selected_action": [batch.pk]},
        follow=True,
    )

    assert "an import of customers cannot be undone" in page.content.decode()
    assert Customer.objects.count() == 1
    assert ImportBatch.objects.count() == 1


def test_the_profile_form_says_what_is_wrong(admin_client):
    page = admin_client.post(
        reverse("admin:health_importprofile_add"),
        {
            "name": "broken",
            "kind": "tickets",
            "description": "",
            "columns": '{"external_id": "Id"}',
            "constants": "{}",
            "value_maps": "{}",
            "customer_field": "support_id",
            "date_order": "",
            "thousands_separator": "",
            "true_words": "",
            "false_words": "",
            "missing_values": "NA",
            "encoding": "",
        },
    )

    assert page.status_code == 200
    assert "required columns with no header or constant: customer, opened_at" in (
        page.content.decode()
    )
    assert not ImportProfile.objects.filter(name="broken").exists()
