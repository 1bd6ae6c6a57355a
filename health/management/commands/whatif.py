"""Score everyone under a (draft) model as of a date, beside the active
models, and print what would change. Stores nothing."""

import json

from django.core.management.base import BaseCommand

from health import jobs, tuning
from health.management.commands._args import iso_date, writable_path
from health.management.commands.backtest import find_model
from health.models import Band


def score(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class Command(BaseCommand):
    help = (
        "What if a model scored everyone as of a date? Band mix beside the "
        "active models, the customers that change band and the biggest "
        "movers. Nothing is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, metavar="NAME:VERSION")
        parser.add_argument("--as-of", type=iso_date, help="Default: today (UTC).")
        parser.add_argument("--movers", type=int, default=20, metavar="N")
        parser.add_argument(
            "--json", dest="json_file", metavar="FILE", type=writable_path
        )

    def handle(self, *args, model, as_of, movers, json_file, **options):
        score_model = find_model(model)
        result = tuning.what_if(
            model=score_model, as_of=as_of or jobs.today(), movers=movers
        )

        self.stdout.write(
            f"What if {result.model} scored {result.customers} customers as of "
            f"{result.as_of}:"
        )
        self.stdout.write(f"{'band':<16}{'active models':>16}{result.model:>16}")
        for band, label in Band.choices:
            self.stdout.write(
                f"{label:<16}{result.current_mix[band]:>16}{result.draft_mix[band]:>16}"
            )

        self.stdout.write(f"\n{len(result.changed)} customers change band:")
        for row in result.changed:
            self.stdout.write(
                f"  {row.customer} ({row.external_id}): "
                f"{row.current_band} {score(row.current_score)} -> "
                f"{row.draft_band} {score(row.draft_score)}"
            )
        self.stdout.write("\nBiggest movers:")
        for row in result.movers:
            self.stdout.write(
                f"  {row.customer} ({row.external_id}): "
                f"{score(row.current_score)} -> {score(row.draft_score)} "
                f"({row.delta:+.1f})"
            )

        if json_file:
            with open(json_file, "w", encoding="utf-8") as out:
                json.dump(result.as_dict(), out, indent=2)
            self.stdout.write(f"Wrote {json_file}")
