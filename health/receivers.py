"""Keep the tables derived from snapshots in step with writes that do not go
through ``services.score_customers``: a snapshot saved one at a time (the
admin, tests, the naive benchmark path) and a customer deleted."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from health import services
from health.models import Customer, ScoreSnapshot


@receiver(post_save, sender=ScoreSnapshot, dispatch_uid="health_snapshot_saved")
def snapshot_saved(sender, instance: ScoreSnapshot, raw: bool = False, **kwargs):
    if raw:
        return
    services.refresh_current_scores(customer_ids=[instance.customer_id], removed=False)
    services.forget_band_tallies(days=[instance.as_of])


@receiver(post_delete, sender=Customer, dispatch_uid="health_customer_deleted")
def customer_deleted(sender, instance: Customer, **kwargs):
    # Its snapshots went with it, from days the tallies may have counted.
    services.forget_band_tallies()
