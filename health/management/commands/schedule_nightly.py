"""Book the nightly "score all as of yesterday" run on RQ's scheduler."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from health import jobs


class Command(BaseCommand):
    help = (
        "Book the next nightly score run on RQ's scheduler (needs REDIS_URL and "
        "a worker started with --with-scheduler). Each run books the next one, "
        "so this is needed once; running it again books nothing twice."
    )

    def handle(self, *args, **options):
        if settings.JOBS_INLINE:
            raise CommandError(
                "REDIS_URL is not set: without RQ there is no scheduler. "
                "Run `manage.py score` from your own scheduler instead."
            )
        at = jobs.schedule_nightly()
        self.stdout.write(f"Nightly score booked for {at:%Y-%m-%d %H:%M} UTC")
