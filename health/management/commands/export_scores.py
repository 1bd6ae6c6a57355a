"""Export one row per customer scored as of a date."""

from django.core.management.base import BaseCommand, CommandError

from health import exports, selectors
from health.management.commands._args import iso_date, writable_path


class Command(BaseCommand):
    help = (
        "Export the scores as of a date (default: the newest date the whole "
        "book was scored) as CSV, XLSX or a CSV for the Salesforce Data Loader."
    )

    def add_arguments(self, parser):
        parser.add_argument("--as-of", type=iso_date)
        parser.add_argument("--format", choices=exports.FORMATS, default="csv")
        parser.add_argument(
            "-o",
            "--output",
            metavar="FILE",
            type=writable_path,
            help="Default: standard output.",
        )

    def handle(self, *args, as_of, format, output, **options):
        if format == "xlsx" and not output:
            raise CommandError("an xlsx export needs -o FILE")
        as_of = as_of or selectors.latest_full_run_as_of()
        if as_of is None:
            raise CommandError("no scores yet; run `manage.py score` first")

        if format == "xlsx":
            count = exports.export_scores(as_of=as_of, format=format, path=output)
        elif output:
            with open(output, "w", encoding="utf-8", newline="") as stream:
                count = exports.export_scores(as_of=as_of, format=format, stream=stream)
        else:
            count = exports.export_scores(
                as_of=as_of, format=format, stream=self.stdout
            )

        # With the rows on standard output, the summary goes to standard
        # error so that a pipe receives clean CSV.
        summary = f"Exported {count} customers scored as of {as_of}"
        if output:
            self.stdout.write(self.style.SUCCESS(f"{summary} to {output}"))
        else:
            self.stderr.write(summary, style_func=None)
