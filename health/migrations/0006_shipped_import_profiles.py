"""The import profiles shipped for the public files in ../shared/data: a
Zendesk Explore ticket export and Maven Analytics' CRM pipeline and accounts.
A copy of the definitions as they were shipped, so later edits in the admin
are not undone by migrating again."""

from django.db import migrations

PROFILES = [
    {
        "name": "zendesk-explore-tickets",
        "kind": "tickets",
        "description": (
            "Zendesk Explore ticket export (Id, Requester id, Created at, "
            "Solved at, Priority, Satisfaction Score, ...). Tickets belong to "
            "the customer whose support desk id is the requester id; a "
            "requester no customer has is a refused row. Explore writes "
            "1900-01-01 00:00:00 as the solved time of unsolved tickets and "
            "'Offered' as the score of a survey sent but not answered: both "
            "read as missing. There is no escalation column."
        ),
        "columns": {
            "external_id": "Id",
            "customer": "Requester id",
            "opened_at": "Created at",
            "closed_at": "Solved at",
            "priority": "Priority",
            "satisfaction": "Satisfaction Score",
        },
        "constants": {},
        "value_maps": {
            "closed_at": {"1900-01-01 00:00:00": ""},
            "satisfaction": {"Offered": ""},
            "priority": {
                "Low": "low",
                "Normal": "normal",
                "High": "high",
                "Urgent": "urgent",
            },
        },
        "customer_field": "support_id",
    },
    {
        "name": "maven-crm-opportunities",
        "kind": "opportunities",
        "description": (
            "Maven Analytics CRM sales pipeline (opportunity_id, sales_agent, "
            "product, account, deal_stage, engage_date, close_date, "
            "close_value). Opportunities belong to the customer of the same "
            "name (import the accounts first). Engaging and Prospecting are "
            "open; every deal is a new-business deal. GTXPro is the product "
            "list's GTX Pro. Rows without an account, and prospects without "
            "an engage date, are refused."
        ),
        "columns": {
            "external_id": "opportunity_id",
            "customer": "account",
            "product": "product",
            "stage": "deal_stage",
            "amount": "close_value",
            "created_on": "engage_date",
            "closed_on": "close_date",
        },
        "constants": {"kind": "new"},
        "value_maps": {
            "stage": {
                "Won": "won",
                "Lost": "lost",
                "Engaging": "open",
                "Prospecting": "open",
            },
            "product": {"GTXPro": "GTX Pro"},
        },
        "customer_field": "name",
    },
    {
        "name": "maven-crm-accounts",
        "kind": "customers",
        "description": (
            "Maven Analytics CRM accounts (account, sector, year_established, "
            "revenue, employees, office_location, subsidiary_of). The file has "
            "no account id, so the account name is the CRM id as well as the "
            "name; the sector is the segment (its misspelt 'technolgy' read "
            "as technology). Revenue is the company's turnover, not ARR, and "
            "is not imported."
        ),
        "columns": {"external_id": "account", "name": "account", "segment": "sector"},
        "constants": {},
        "value_maps": {"segment": {"technolgy": "technology"}},
        "customer_field": "external_id",
    },
]


def add_profiles(apps, schema_editor):
    ImportProfile = apps.get_model("health", "ImportProfile")
    for fields in PROFILES:
        ImportProfile.objects.update_or_create(
            name=fields["name"],
            defaults={k: v for k, v in fields.items() if k != "name"},
        )


def remove_profiles(apps, schema_editor):
    ImportProfile = apps.get_model("health", "ImportProfile")
    ImportProfile.objects.filter(name__in=[p["name"] for p in PROFILES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("health", "0005_import_profiles"),
    ]

    operations = [migrations.RunPython(add_profiles, remove_profiles)]
