"""Ship the medium-term draft beside the default model.

DESIGN lists CSM pulse and NPS as medium-term inputs; this draft gives each a
component of its own, so admins can try it with what-if and backtest before
publishing. The data lives here, not in a module, so that the migration keeps
meaning what it meant when it ran.
"""

from django.db import migrations

NAME = "Medium-term"
NOTE = (
    "Draft: CSM pulse and NPS as components of their own (the medium-term "
    "inputs), support experience without NPS, and renewals judged only after "
    "a year as a customer. Try it with what-if and backtest before publishing."
)

# (key, name, weight, replaces, [(metric, weight, curve, min_tenure_days)])
COMPONENTS = [
    ("adoption", "Product adoption", 35, None, [
        ("active_user_ratio", 50, [[0, 0], [0.5, 60], [0.8, 100]], 0),
        ("feature_adoption_ratio", 30, [[0, 0], [0.6, 100]], 0),
        ("login_days_30d", 20, [[0, 0], [10, 60], [20, 100]], 0),
    ]),
    ("support", "Support experience", 20, None, [
        ("median_hours_to_close", 50, [[4, 100], [24, 70], [72, 30], [168, 0]], 0),
        ("escalations_90d", 50, [[0, 100], [1, 60], [3, 20], [5, 0]], 0),
    ]),
    ("purchasing", "Purchasing behaviour", 20, None, [
        ("product_count", 30, [[1, 40], [2, 70], [4, 100]], 0),
        # A customer in its first year has had no renewal to win.
        ("renewal_count", 30, [[0, 50], [1, 75], [3, 100]], 365),
        ("lost_opportunity_share", 40, [[0, 100], [0.5, 40], [1, 0]], 0),
    ]),
    ("nps", "NPS", 15, None, [
        ("nps", 100, [[-100, 0], [0, 50], [70, 100]], 0),
    ]),
    ("pulse", "CSM pulse", 10, None, [
        ("pulse", 100, [[1, 0], [3, 50], [5, 100]], 0),
    ]),
    ("interactions", "CS interactions", 0, "support", [
        ("days_since_interaction", 40, [[0, 100], [14, 80], [45, 30], [90, 0]], 0),
        ("interaction_sentiment", 60, [[-1, 0], [0, 50], [1, 100]], 0),
    ]),
]  # fmt: skip


def seed(apps, schema_editor):
    Metric = apps.get_model("health", "Metric")
    ScoreModel = apps.get_model("health", "ScoreModel")
    Component = apps.get_model("health", "Component")
    Measure = apps.get_model("health", "Measure")

    if ScoreModel.objects.filter(name=NAME).exists():
        return
    metrics = {m.key: m for m in Metric.objects.all()}
    model = ScoreModel.objects.create(name=NAME, version=1, status="draft", note=NOTE)
    components = {}
    for key, name, weight, replaces, measures in COMPONENTS:
        components[key] = Component.objects.create(
            model=model,
            key=key,
            name=name,
            weight=weight,
            replaces=components.get(replaces),
        )
        for metric, measure_weight, curve, min_tenure in measures:
            Measure.objects.create(
                component=components[key],
                metric=metrics[metric],
                weight=measure_weight,
                curve=curve,
                min_tenure_days=min_tenure,
            )


def unseed(apps, schema_editor):
    apps.get_model("health", "ScoreModel").objects.filter(
        name=NAME, version=1, status="draft"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("health", "0003_tuning")]

    operations = [migrations.RunPython(seed, unseed)]
