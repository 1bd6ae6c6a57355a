"""Import a CSV or XLSX file of one of the canonical kinds, or another tool's
export through an import profile."""

import argparse
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from health import import_profiles, importers


def thousands_separator(value: str) -> str:
    """A thousands separator given as its character or its name; empty (the
    default, which argparse passes through here too) for none."""
    if not value:
        return ""
    by_name = {name: char for char, name in importers.THOUSANDS_SEPARATORS.items()}
    value = by_name.get(value.strip().lower(), value)
    if value not in importers.THOUSANDS_SEPARATORS:
        names = ", ".join(by_name)
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {names}")
    return value


class Progress:
    """Both passes of an import on one line, redrawn in place on a terminal;
    elsewhere (CI logs, pipes) one line per tenth of each pass."""

    def __init__(self, command: BaseCommand, file_name: str) -> None:
        self.stream = command.stdout
        self.file_name = file_name
        self.started = time.monotonic()
        self.tty = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
        self.last: tuple[str, int] | None = None
        self.drawn = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.started
        if stage == "checking" and not total:
            text = f"Checking {self.file_name}: {done:,} rows read ({elapsed:.1f}s)"
            step = done // 100_000
        elif stage == "checking":
            percent = 100 * done / total
            text = f"Checking {self.file_name}: {percent:.0f}% ({elapsed:.1f}s)"
            step = int(percent // 10)
        else:
            percent = 100 * done / total if total else 100
            text = (
                f"Writing: {done:,} / {total:,} rows ({percent:.0f}%, {elapsed:.1f}s)"
            )
            step = int(percent // 10)

        if self.tty:
            self.stream.write("\r\033[K" + text, ending="")
            self.stream.flush()
            self.drawn = True
        elif (stage, step) != self.last:
            self.last = (stage, step)
            self.stream.write(text)

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("")
            self.drawn = False


class Command(BaseCommand):
    help = (
        "Import a CSV or XLSX file of one kind, or another tool's export "
        "through an import profile (KIND is then the profile's name). A file "
        "with a bad row imports nothing unless --skip-bad-rows is given; "
        "re-importing a file changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "kind",
            metavar="KIND",
            help=f"one of {', '.join(importers.KINDS)}, or an import profile",
        )
        parser.add_argument(
            "file",
            metavar="FILE",
            type=Path,
            help="a .csv (or .txt, .tsv) or .xlsx file",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Validate and count, write nothing.",
        )
        parser.add_argument(
            "--skip-bad-rows",
            action="store_true",
            help="Import the good rows; copy the bad ones, with the line and "
            "the reason, to NAME.rejects.csv next to the input (readings.xlsx "
            "-> readings.rejects.csv).",
        )
        parser.add_argument(
            "--encoding",
            default="",
            help="The text encoding of a CSV file (default: detected: UTF-8, "
            "UTF-16, Windows-1252 or Latin-1).",
        )
        parser.add_argument(
            "--date-order",
            choices=list(importers.DATE_ORDERS),
            default="",
            help="How to read dates such as 03/04/2024: dmy (day first) or "
            "mdy (month first). Without it such a file must prove its order.",
        )
        parser.add_argument(
            "--decimal-comma",
            action="store_true",
            help="Numbers are written 1234,5.",
        )
        parser.add_argument(
            "--thousands-separator",
            metavar="SEP",
            type=thousands_separator,
            default="",
            help="Numbers group thousands with this character: "
            + ", ".join(
                f"{name} ({character!r})"
                for character, name in importers.THOUSANDS_SEPARATORS.items()
            )
            + "; give the name or the character.",
        )
        parser.add_argument(
            "--missing-values",
            default="",
            help="Comma-separated words read as an empty cell, e.g. 'NA,N/A,-,null'.",
        )

    def handle(self, *args, kind, file, dry_run, skip_bad_rows, **options):
        if not file.is_file():
            raise CommandError(f"{file} is not a file")
        try:
            kind, mapping, profile = import_profiles.resolve(kind)
        except import_profiles.UnknownKind as exc:
            raise CommandError(str(exc)) from exc
        overrides = importers.Options().merged(
            encoding=options["encoding"],
            date_order=options["date_order"],
            decimal_comma=options["decimal_comma"],
            thousands_separator=options["thousands_separator"],
            missing_values=import_profiles.words(options["missing_values"]),
        )

        progress = Progress(self, file.name)
        try:
            report = importers.import_file(
                kind=kind,
                path=file,
                dry_run=dry_run,
                skip_bad_rows=skip_bad_rows,
                progress=progress,
                mapping=mapping,
                options=overrides,
                profile=profile,
            )
        except importers.ImportFailed as exc:
            progress.finish()
            raise CommandError(str(exc)) from exc
        progress.finish()

        for error in report.errors:
            self.stderr.write(f"skipped {error}")
        if report.rejects_path:
            self.stdout.write(f"Bad rows written to {report.rejects_path}")

        what = f"{kind} (profile {profile})" if profile else kind
        self.stdout.write(f"Read {file.name} as {report.read_as}.")
        if dry_run:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Dry run of {what} from {file.name}, nothing written: "
                    f"{report.summary}"
                )
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {what} from {file.name}: {report.summary} "
                f"(import batch {report.batch_id})"
            )
        )
        if report.rescored:
            self.stdout.write(f"Re-scoring {report.rescored} customers.")
