"""Load the public RavenStack tables, then backfill month-end scores.

    python manage.py load_ravenstack ../shared/data/ravenstack_saas
    python manage.py load_ravenstack FOLDER --no-score
    python manage.py load_ravenstack FOLDER --report   # band mix and churn

The mapping from the files to the workbench is described in
``health/ravenstack.py``.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from health import jobs, ravenstack
from health.management.commands._progress import ProgressLine
from health.models import JobRun


class Command(BaseCommand):
    help = (
        "Load the five RavenStack CSV files in FOLDER (all or nothing, "
        "rerunnable), then score every month end from 2023-01-31 to 2024-12-31."
    )

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path)
        parser.add_argument(
            "--no-score", action="store_true", help="Load only; score nothing."
        )
        parser.add_argument(
            "--report",
            action="store_true",
            help="Print the band mix and the churn rate per band afterwards.",
        )

    def handle(self, *args, folder, no_score, report, **options):
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder")

        progress = ProgressLine(self.stdout, f"Load {folder}")
        try:
            result = ravenstack.load_ravenstack(folder=folder, progress=progress)
        except ravenstack.RavenStackError as exc:
            raise CommandError(f"{exc}; nothing was loaded") from exc
        progress.finish()
        self._print_counts(result)

        if not no_score:
            dates = ravenstack.month_ends()
            progress = ProgressLine(
                self.stdout, f"Score {dates[0]} to {dates[-1]} ({len(dates)} dates)"
            )
            run = ravenstack.score_month_ends(progress=progress)
            run = jobs.wait_for(run, progress)
            progress.finish()
            if run.status in (JobRun.Status.FAILED, JobRun.Status.STALE):
                raise CommandError(f"run {run.pk} {run.status}: {run.error}")
            self.stdout.write(
                self.style.SUCCESS(
                    f"Run {run.pk}: {run.status}, {run.done:,} customer-dates scored"
                )
            )

        if report:
            self._print_report(ravenstack.measure_band_churn())

    def _print_counts(self, result: ravenstack.LoadResult) -> None:
        for label, counts in [
            ("customers", result.customers),
            ("opportunities", result.opportunities),
            ("tickets", result.tickets),
            ("readings", result.readings),
        ]:
            self.stdout.write(
                f"{label:>14}: {counts.total:>6,} ({counts.new:,} new, "
                f"{counts.updated:,} updated, {counts.unchanged:,} unchanged)"
            )
        self.stdout.write(
            f"{result.churned} churned ({result.churned_without_event} flagged "
            f"without a churn event), {result.trials_skipped:,} trial "
            f"subscriptions skipped, {result.usage_rows:,} usage rows read"
        )
        self.stdout.write(
            self.style.SUCCESS(f"Loaded in {result.seconds:.1f}s, all or nothing")
        )

    def _print_report(self, report: ravenstack.BandChurn) -> None:
        dates = report.observation_dates
        self.stdout.write(
            f"\nBand shares at {report.as_of} and pooled over every month end; "
            f"churn within {report.horizon_days} days of the month ends "
            f"{dates[0]} to {dates[-1]} ({len(dates)} dates):"
        )
        self.stdout.write(
            f"{'band':<15}{'at end':>14}{'pooled':>16}"
            f"{'observations':>14}{'churned':>9}{'rate':>8}"
        )
        for band, (count, share) in report.shares_at_end.items():
            pooled, pooled_share = report.shares_pooled[band]
            seen, lost, rate = report.churn[band]
            rate_text = "-" if rate is None else f"{rate:.1%}"
            self.stdout.write(
                f"{band:<15}{count:>6} {share:>6.1%}{pooled:>8} {pooled_share:>6.1%}"
                f"{seen:>14}{lost:>9}{rate_text:>8}"
            )
