"""Measure scoring, imports and pages on a synthetic book of N customers."""

import json
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from health import benchmark


class Command(BaseCommand):
    help = (
        "Generate (or reuse) a synthetic book of N customers with a year of "
        "history and measure score all, backfill, import and pages against "
        "the floor PostgreSQL sets. PostgreSQL only; use a database of its own."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, metavar="N")
        parser.add_argument("--json", type=Path, metavar="FILE")
        parser.add_argument("--seed", type=int, default=benchmark.DEFAULT_SEED)
        parser.add_argument(
            "--import-rows",
            type=int,
            default=benchmark.IMPORT_ROWS,
            help="Readings in the import file (default 1,000,000).",
        )
        parser.add_argument(
            "--naive-sample",
            type=int,
            default=benchmark.NAIVE_SAMPLE,
            help="Customers scored the naive way, then extrapolated.",
        )
        parser.add_argument(
            "--page-requests", type=int, default=benchmark.PAGE_REQUESTS
        )
        # Internal: the benchmark scores all in a child process of its own,
        # to read that process's peak memory.
        parser.add_argument("--score-all-child", type=date.fromisoformat)
        parser.add_argument("--no-announce", action="store_true")

    def handle(self, *args, customers, score_all_child, no_announce, **options):
        try:
            benchmark.check_database()
        except benchmark.BenchmarkRefused as exc:
            raise CommandError(str(exc)) from exc

        if score_all_child:
            figures = benchmark.measure_score_all_here(
                score_all_child, announce=not no_announce
            )
            self.stdout.write(json.dumps(figures))
            return

        if not customers or customers < 1:
            raise CommandError("give --customers N, a positive number")
        try:
            result = benchmark.run_benchmark(
                customers,
                seed=options["seed"],
                import_rows=options["import_rows"],
                naive_sample=options["naive_sample"],
                page_requests=options["page_requests"],
                say=self.stdout.write,
            )
        except benchmark.BenchmarkRefused as exc:
            raise CommandError(str(exc)) from exc

        self.stdout.write("")
        for line in benchmark.summary_lines(result):
            self.stdout.write(line)
        if options["json"]:
            options["json"].write_text(json.dumps(result, indent=2, default=str))
            self.stdout.write(f"Figures written to {options['json']}")
