"""Score every customer as of a date, or backfill a range of dates."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from health import jobs
from health.management.commands._args import iso_date
from health.management.commands._progress import ProgressLine
from health.models import JobRun

# Ten years of daily scores; more is a typo in --from, not a plan.
MAX_DATES = 3660


class Command(BaseCommand):
    help = (
        "Score all customers as of a date (default: today, UTC), or every "
        "DAYS days from --from to --to."
    )

    def add_arguments(self, parser):
        parser.add_argument("--as-of", type=iso_date)
        parser.add_argument("--from", dest="start", type=iso_date)
        parser.add_argument("--to", dest="end", type=iso_date)
        parser.add_argument("--every", type=int, default=1, metavar="DAYS")
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="With RQ: return once the jobs are queued.",
        )

    def handle(self, *args, as_of, start, end, every, no_wait, **options):
        if as_of and (start or end):
            raise CommandError("give either --as-of or --from and --to, not both")
        if bool(start) != bool(end):
            raise CommandError("--from and --to go together")
        if every < 1:
            raise CommandError("--every must be at least 1")

        if start:
            if end < start:
                raise CommandError("--to is before --from")
            dates = []
            day = start
            while day <= end:
                dates.append(day)
                day += timedelta(days=every)
            label = f"Backfill {start} to {end} every {every}d ({len(dates)} dates)"
        else:
            dates = [as_of or jobs.today()]
            label = f"Score as of {dates[0]}"

        # A future date would become "the latest scores" on every page and
        # assign playbooks for bands nobody is in yet.
        if dates[-1] > jobs.today():
            raise CommandError(f"{dates[-1]} is after today ({jobs.today()}, UTC)")
        if len(dates) > MAX_DATES:
            raise CommandError(
                f"{len(dates):,} dates is more than {MAX_DATES:,}; "
                "use --every to score fewer"
            )

        progress = ProgressLine(self.stdout, label)
        kind = JobRun.Kind.SCORE_ALL if len(dates) == 1 else JobRun.Kind.BACKFILL
        run = jobs.start_backfill(dates=dates, kind=kind, progress=progress)
        if not no_wait:
            run = jobs.wait_for(run, progress)
        progress.finish()

        if run.status == JobRun.Status.FAILED or run.status == JobRun.Status.STALE:
            raise CommandError(f"run {run.pk} {run.status}: {run.error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Run {run.pk}: {run.status}, {run.done:,} of {run.total:,} "
                "customer-dates scored"
            )
        )
