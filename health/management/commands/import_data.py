"""Import a CSV or XLSX file of one of the canonical kinds."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from health import importers
from health.management.commands._progress import ProgressLine


class Command(BaseCommand):
    help = (
        "Import a CSV (UTF-8) or XLSX file of one kind. A file with a bad row "
        "imports nothing unless --skip-bad-rows is given; re-importing a file "
        "changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=importers.KINDS)
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Validate and count, write nothing.",
        )
        parser.add_argument(
            "--skip-bad-rows",
            action="store_true",
            help="Import the good rows; copy the bad ones, with the reason, "
            "to FILE.rejects.csv next to the input.",
        )

    def handle(self, *args, kind, file, dry_run, skip_bad_rows, **options):
        if not file.is_file():
            raise CommandError(f"{file} is not a file")

        progress = ProgressLine(self.stdout, f"Importing {kind}")
        try:
            report = importers.import_file(
                kind=kind,
                path=file,
                dry_run=dry_run,
                skip_bad_rows=skip_bad_rows,
                progress=progress,
            )
        except importers.ImportFailed as exc:
            raise CommandError(str(exc)) from exc
        progress.finish()

        for error in report.errors:
            self.stderr.write(f"skipped {error}")
        if report.rejects_path:
            self.stdout.write(f"Bad rows written to {report.rejects_path}")

        if dry_run:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Dry run of {kind} from {file.name}, nothing written: "
                    f"{report.summary}"
                )
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {kind} from {file.name}: {report.summary} "
                f"(import batch {report.batch_id})"
            )
        )
        if report.rescored:
            self.stdout.write(f"Re-scoring {report.rescored} customers.")
