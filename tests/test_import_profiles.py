"""Import profiles: the ones shipped for the public files, each run on the
real file with the counts worked out from the raw CSV by awk, and the
checks an admin's profile goes through."""

import shutil
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Sum

from health import import_profiles, jobs
from health.models import Customer, ImportBatch, ImportProfile, Opportunity, Ticket

SHIPPED = ["maven-crm-accounts", "maven-crm-opportunities", "zendesk-explore-tickets"]


def run_import(kind: str, path: Path, *flags: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_data", kind, str(path), *flags, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def reasons(lines: list[str]) -> Counter:
    """How often each reason occurs, without the line numbers."""
    return Counter(
        line.split(": ", 1)[1] if ", column" in line else line for line in lines
    )


@pytest.fixture
def rescore_calls(db, monkeypatch) -> list[list[int]]:
    # Scoring thousands of customers inline is the scoring tests' business;
    # here it is enough that the import asks once for the customers it touched.
    calls = []
    monkeypatch.setattr(
        jobs, "request_rescore", lambda ids, as_of=None: calls.append(list(ids))
    )
    return calls


@pytest.fixture
def maven(shared_data, tmp_path) -> Path:
    """A copy of the Maven files: --skip-bad-rows writes its rejects next to
    the input, and the shared folder is not ours to write in."""
    folder = tmp_path / "maven"
    shutil.copytree(shared_data / "maven_crm_sales_opportunities", folder)
    return folder


# --- Shipped profiles ------------------------------------------------------------


def test_the_shipped_profiles_are_there_and_valid(db):
    profiles = ImportProfile.objects.order_by("name")

    assert [p.name for p in profiles] == SHIPPED
    for profile in profiles:
        assert (
            import_profiles.problems(
                kind=profile.kind,
                columns=profile.columns,
                constants=profile.constants,
                value_maps=profile.value_maps,
            )
            == {}
        ), profile.name


@pytest.mark.realdata
def test_maven_accounts_become_customers(maven, rescore_calls):
    out, _ = run_import("maven-crm-accounts", maven / "accounts.csv")

    # awk -F, 'NR>1' accounts.csv | wc -l -> 85 accounts, no quoted cells.
    assert "85 new, 0 updated, 0 unchanged, 0 skipped" in out
    assert Customer.objects.count() == 85
    acme = Customer.objects.get(name="Acme Corporation")
    assert (acme.external_id, acme.segment) == ("Acme Corporation", "technology")
    # awk -F, 'NR>1{s[$2]++}': 12 'technolgy', 17 retail, 10 sectors in all.
    segments = Counter(Customer.objects.values_list("segment", flat=True))
    assert (segments["technology"], segments["retail"], len(segments)) == (12, 17, 10)
    assert "technolgy" not in segments
    assert len(rescore_calls) == 1 and len(rescore_calls[0]) == 85

    again, _ = run_import("maven-crm-accounts", maven / "accounts.csv")
    assert "0 new, 0 updated, 85 unchanged, 0 skipped" in again


@pytest.mark.realdata
def test_maven_pipeline_lands_its_opportunities_and_refuses_the_rest(
    maven, rescore_calls
):
    run_import("maven-crm-accounts", maven / "accounts.csv")
    pipeline = maven / "sales_pipeline.csv"

    # All or nothing first: every refused row is listed, nothing lands.
    with pytest.raises(CommandError) as failure:
        run_import("maven-crm-opportunities", pipeline)
    assert Opportunity.objects.count() == 0
    message = str(failure.value)

    # From the raw file, awk -F, 'NR>1' over 8 fields, no quotes:
    # $4=="" (no account) 1,425; $6=="" (no engage date, all Prospecting) 500,
    # 337 of them also without an account; so 1,425 + 163 rows refused.
    assert "1588 bad rows;" in message
    assert reasons(message.splitlines()[1:]) == {
        "is required": 1425 + 500,
    }
    assert Counter(
        line.split(", column ")[1].split(":")[0] for line in message.splitlines()[1:]
    ) == {"customer": 1425, "created_on": 500}

    out, err = run_import("maven-crm-opportunities", pipeline, "--skip-bad-rows")

    # $4!="" && $6!="": 7,212 land: Won 4,238, Lost 2,473, Engaging 501.
    assert "7212 new, 0 updated, 0 unchanged, 1588 skipped" in out
    stages = Counter(Opportunity.objects.values_list("stage", flat=True))
    assert stages == {"won": 4238, "lost": 2473, "open": 501}
    products = Counter(Opportunity.objects.values_list("product", flat=True))
    # 1,224 landed rows say GTXPro; the product list calls it GTX Pro.
    assert (products["GTX Pro"], products["GTXPro"]) == (1224, 0)
    # Sum of $8 over the landed rows (empty close values count 0).
    assert Opportunity.objects.aggregate(total=Sum("amount"))["total"] == 10005534
    assert set(Opportunity.objects.values_list("kind", flat=True)) == {"new"}
    rejects = (maven / "sales_pipeline.rejects.csv").read_text().splitlines()
    assert len(rejects) == 1 + 1588
    assert rejects[0].endswith(",line,reason")
    assert len(err.splitlines()) == 1425 + 500

    again, _ = run_import("maven-crm-opportunities", pipeline, "--skip-bad-rows")
    assert "0 new, 0 updated, 7212 unchanged, 1588 skipped" in again


@pytest.mark.realdata
def test_zendesk_tickets_land_on_customers_by_requester_id(
    shared_data, tmp_path, rescore_calls
):
    # The profile creates no customers: a requester is a person at a
    # customer, and only the CRM knows which. Here customers exist for the
    # requesters whose id does not end in 9; the other tickets are refused.
    source = shared_data / "zendesk_explore_plum" / "tickets.csv"
    tickets = tmp_path / "tickets.csv"
    shutil.copyfile(source, tickets)
    requesters = sorted(
        {
            line.split(",")[1]
            for line in source.read_text().splitlines()[1:]
            if not line.split(",")[1].endswith("9")
        }
    )
    Customer.objects.bulk_create(
        Customer(external_id=f"Z-{rid}", name=f"Requester {rid}", support_id=rid)
        for rid in requesters
    )

    out, err = run_import("zendesk-explore-tickets", tickets, "--skip-bad-rows")

    # tr -d '\r' < tickets.csv | awk -F, 'NR>1 && $2 !~ /9$/': 11,440 tickets
    # of 5,387 requesters land; 5,036 (of 1,377 requesters ending in 9) do
    # not. 23 fields per row, no quoted cells, CRLF line ends.
    assert len(requesters) == 5387
    assert "11440 new, 0 updated, 0 unchanged, 5036 skipped" in out
    assert reasons(err.splitlines()) == {
        reason: count
        for reason, count in Counter(
            f"no customer has support desk id '{line.split(',')[1]}'"
            for line in source.read_text().splitlines()[1:]
            if line.split(",")[1].endswith("9")
        ).items()
    }
    assert len(err.splitlines()) == 5036
    # Of the landed: $11 ~ /^1900/ (unsolved) 1,362; $13 in 1-5: 677, sum 2,948;
    # priorities Low 11,274, Urgent 155, Normal 11.
    assert Ticket.objects.filter(closed_at=None).count() == 1362
    assert Ticket.objects.exclude(satisfaction=None).count() == 677
    assert Ticket.objects.aggregate(total=Sum("satisfaction"))["total"] == 2948
    assert Counter(Ticket.objects.values_list("priority", flat=True)) == {
        "low": 11274,
        "urgent": 155,
        "normal": 11,
    }
    assert Ticket.objects.filter(escalated=True).count() == 0
    assert rescore_calls == [
        sorted(
            Customer.objects.filter(tickets__isnull=False)
            .distinct()
            .values_list("pk", flat=True)
        )
    ]
    batch = ImportBatch.objects.get()
    assert (batch.kind, batch.rows_new, batch.rows_skipped) == ("tickets", 11440, 5036)


# --- Profiles an admin writes ---------------------------------------------------


def test_a_profile_with_problems_says_what_they_are():
    found = import_profiles.problems(
        kind="tickets",
        columns={"external_id": "Id", "requester": "Requester id"},
        constants={"external_id": "x"},
        value_maps={"priority": "low"},
        encoding="klingon",
        decimal_comma=True,
        thousands_separator=",",
    )

    assert found == {
        "columns": [
            "requester: not a column of tickets (external_id, customer, opened_at, "
            "closed_at, priority, escalated, satisfaction)",
            "required columns with no header or constant: customer, opened_at",
        ],
        "value_maps": ['must map column names to {"file value": "value"} maps'],
        "constants": ["external_id: also read from a column"],
        "encoding": ["'klingon' is not an encoding Python knows"],
        "thousands_separator": ["cannot be the decimal separator too"],
    }


def test_an_unknown_kind_names_the_kinds_and_profiles(db, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n")

    with pytest.raises(CommandError) as failure:
        run_import("zendesk", path)

    assert "'zendesk' is neither a kind (users, customers," in str(failure.value)
    assert "nor a profile (maven-crm-accounts, maven-crm-opportunities," in str(
        failure.value
    )


def test_a_profile_leaves_the_fields_it_does_not_map_alone(db, tmp_path, csm):
    acme = Customer.objects.create(
        external_id="Acme Corporation", name="Acme Corporation", owner=csm, arr=5000
    )
    path = tmp_path / "accounts.csv"
    path.write_text("account,sector\nAcme Corporation,technolgy\n")

    out, _ = run_import("maven-crm-accounts", path)

    assert "0 new, 1 updated, 0 unchanged, 0 skipped" in out
    acme.refresh_from_db()
    assert (acme.segment, acme.owner, acme.arr) == ("technology", csm, 5000)
