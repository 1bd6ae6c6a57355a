from django.db import migrations


def seed(apps, schema_editor):
    from health.defaults import DEFAULT_COMPONENTS, DEFAULT_MODEL_NAME, METRICS

    Metric = apps.get_model("health", "Metric")
    ScoreModel = apps.get_model("health", "ScoreModel")
    Component = apps.get_model("health", "Component")
    Measure = apps.get_model("health", "Measure")

    metrics = {}
    for key, name, unit, source, description in METRICS:
        metrics[key], _ = Metric.objects.get_or_create(
            key=key,
            defaults={
                "name": name,
                "unit": unit,
                "source": source,
                "description": description,
            },
        )

    model = ScoreModel.objects.create(
        name=DEFAULT_MODEL_NAME,
        version=1,
        status="active",
        note="The initial customer health score model.",
    )
    components = {}
    for key, name, weight, replaces, measures in DEFAULT_COMPONENTS:
        components[key] = Component.objects.create(
            model=model,
            key=key,
            name=name,
            weight=weight,
            replaces=components.get(replaces),
        )
        for metric, measure_weight, curve in measures:
            Measure.objects.create(
                component=components[key],
                metric=metrics[metric],
                weight=measure_weight,
                curve=curve,
            )


def unseed(apps, schema_editor):
    apps.get_model("health", "ScoreModel").objects.filter(
        name="Default", version=1
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("health", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
