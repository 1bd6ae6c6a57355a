"""Fill the customers' current scores from the snapshots stored, and leave
room on the customers' pages for rewriting them in place."""

from datetime import timedelta

from django.db import migrations
from django.db.models import (
    DateTimeField,
    ExpressionWrapper,
    F,
    OuterRef,
    Subquery,
)


def fill_current_scores(apps, schema_editor):
    """Each customer's newest official snapshot and its change over 30 days
    (DESIGN.md rule 9), as the scoring code keeps them: three set-based
    UPDATEs, correlated subqueries on the (customer, as_of) index."""
    Customer = apps.get_model("health", "Customer")
    ScoreSnapshot = apps.get_model("health", "ScoreSnapshot")
    official = ScoreSnapshot.objects.exclude(model__status="draft")
    order = ("-as_of", "-computed_at", "-pk")

    newest = official.filter(customer=OuterRef("pk")).order_by(*order)
    Customer.objects.update(
        current_score=Subquery(newest.values("score")[:1]),
        current_band=Subquery(newest.values("band")[:1]),
        current_coverage=Subquery(newest.values("coverage")[:1]),
        scored_on=Subquery(newest.values("as_of")[:1]),
    )

    # On SQLite a date minus a duration is a date-time text: "as_of <= D-30
    # 00:00:00" and "as_of > D-38 00:00:00" compare right on both databases.
    then = ExpressionWrapper(
        OuterRef("scored_on") - timedelta(days=30), output_field=DateTimeField()
    )
    too_old = ExpressionWrapper(
        OuterRef("scored_on") - timedelta(days=38), output_field=DateTimeField()
    )
    baseline = official.filter(
        customer=OuterRef("pk"), as_of__lte=then, as_of__gt=too_old
    ).order_by(*order)
    scored = Customer.objects.filter(scored_on__isnull=False)
    scored.update(score_30d_ago=Subquery(baseline.values("score")[:1]))
    scored.update(delta_30d=F("current_score") - F("score_30d_ago"))


def leave_room_for_updates(apps, schema_editor):
    # Every score run rewrites each customer's current score; with free
    # space on its page, PostgreSQL writes the new row version there and
    # leaves the indexes alone (a HOT update).
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE health_customer SET (fillfactor = 70)")


def pack_pages(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE health_customer RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("health", "0007_scores_on_customers"),
    ]

    operations = [
        migrations.RunPython(leave_room_for_updates, pack_pages),
        migrations.RunPython(fill_current_scores, migrations.RunPython.noop),
    ]
