"""Build the demo book: made-up customers with 18 months of history, scored
at every month end and every recent day, plus demo users for each role."""

from django.core.management.base import BaseCommand, CommandError

from health import jobs
from health.demo import (
    DEMO_PREFIX,
    build_demo_book,
    demo_backfill_dates,
    demo_band_mix,
)
from health.management.commands._args import iso_date
from health.management.commands._progress import ProgressLine
from health.models import JobRun
from health.signals import demo_built


class Command(BaseCommand):
    help = (
        "Replace the demo book (customers with DEMO- external ids and the demo "
        "users) with a fresh one, score its history and print the logins."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=300, metavar="N")
        parser.add_argument(
            "--seed", type=int, default=1, help="Same seed, same book (default 1)."
        )
        parser.add_argument(
            "--as-of", type=iso_date, help="The book's today (default: today, UTC)."
        )

    def handle(self, *args, customers, seed, as_of, **options):
        if customers < 1:
            raise CommandError("--customers must be at least 1")
        as_of = as_of or jobs.today()
        if as_of > jobs.today():
            raise CommandError(f"{as_of} is after today ({jobs.today()}, UTC)")

        book = build_demo_book(customers=customers, seed=seed, as_of=as_of)
        counts = ", ".join(f"{n:,} {kind}" for kind, n in book.counts.items())
        self.stdout.write(f"Demo book as of {as_of}: {counts}")
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(book.trajectories.items()))
        self.stdout.write(f"Hidden trajectories: {kinds}")

        dates = demo_backfill_dates(as_of)
        progress = ProgressLine(self.stdout, f"Scoring {len(dates)} dates")
        run = jobs.start_backfill(
            dates=dates, kind=JobRun.Kind.BACKFILL, progress=progress
        )
        run = jobs.wait_for(run, progress)
        progress.finish()
        if run.status in (JobRun.Status.FAILED, JobRun.Status.STALE):
            raise CommandError(f"run {run.pk} {run.status}: {run.error}")

        # Other apps (playbooks) give the book their own demo state.
        made = demo_built.send(sender=None, as_of=as_of, prefix=DEMO_PREFIX)
        for receiver, count in made:
            self.stdout.write(f"{receiver.__module__}: {count} demo records")

        mix = ", ".join(f"{band} {n}" for band, n in demo_band_mix(as_of).items())
        self.stdout.write(f"Bands as of {as_of}: {mix}")
        self.stdout.write(self.style.SUCCESS("Demo logins (role, username, password):"))
        for role, username, password in book.logins:
            self.stdout.write(f"  {role:<11} {username:<8} {password}")
