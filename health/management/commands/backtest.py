"""Did a model's score foretell churn? Print DESIGN's backtest table."""

import json

from django.core.management.base import BaseCommand, CommandError

from health import backtest, jobs
from health.management.commands._args import iso_date, writable_path
from health.models import Band, ScoreModel


def find_model(label: str | None) -> ScoreModel:
    try:
        if label is None:
            return backtest.default_active_model()
        return backtest.parse_model_label(label)
    except ScoreModel.DoesNotExist as exc:
        raise CommandError(f"no score model {label or 'active default'!r}") from exc


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f} %"


def interval(ci: list[float] | None) -> str:
    return "-" if ci is None else f"{ci[0]:.3f}-{ci[1]:.3f}"


def number(value: float | None, places: int = 3) -> str:
    return "-" if value is None else f"{value:.{places}f}"


class Command(BaseCommand):
    help = (
        "Backtest a score model: at each month end, did its score foretell "
        "churn within the horizon? Prints churn rate per band, AUC with its "
        "95 % interval (DeLong), lift of the two lowest bands and false greens."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model",
            metavar="NAME:VERSION",
            help="Default: the active default model.",
        )
        parser.add_argument(
            "--compare",
            metavar="NAME:VERSION",
            help="A second model to show side by side.",
        )
        parser.add_argument("--from", dest="start", type=iso_date)
        parser.add_argument("--to", dest="end", type=iso_date)
        parser.add_argument(
            "--horizon",
            type=int,
            default=backtest.DEFAULT_HORIZON_DAYS,
            metavar="DAYS",
        )
        parser.add_argument(
            "--json", dest="json_file", metavar="FILE", type=writable_path
        )

    def handle(self, *args, model, compare, start, end, horizon, json_file, **opts):
        if horizon < 1:
            raise CommandError("--horizon must be at least 1 day")
        if start and end and end < start:
            raise CommandError("--to is before --from")

        models = [find_model(model)]
        if compare:
            models.append(find_model(compare))
        today = jobs.today()
        reports = [
            backtest.run_backtest(
                m, start=start, end=end, horizon_days=horizon, today=today
            )
            for m in models
        ]

        left_out = reports[0]["month_ends_left_out"]
        if left_out:
            self.stderr.write(
                self.style.WARNING(
                    f"Warning: left out {len(left_out)} month ends "
                    f"({left_out[0]} to {left_out[-1]}): their {horizon}-day "
                    f"horizon reaches past today ({today})."
                )
            )
        self.print_table(reports)

        if json_file:
            result = dict(reports[0])
            if len(reports) > 1:
                result["compare"] = reports[1]
            with open(json_file, "w", encoding="utf-8") as out:
                json.dump(result, out, indent=2)
            self.stdout.write(f"Wrote {json_file}")

    def print_table(self, reports: list[dict]) -> None:
        first = reports[0]
        used = first["month_ends"]
        span = f"{used[0]} to {used[-1]} ({len(used)})" if used else "none"
        self.stdout.write(
            f"Backtest, horizon {first['horizon_days']} days, month ends {span}"
        )

        def line(label: str, cells: list[str]) -> None:
            self.stdout.write(f"{label:<28}" + "".join(f"{cell:>28}" for cell in cells))

        line("", [f"{r['model']} ({r['model_status']})" for r in reports])
        line("band", ["observations  churn rate" for _ in reports])
        for band, label in Band.choices:
            if band == Band.UNSCORED:
                continue
            line(
                label,
                [
                    f"{r['count_by_band'][band]:>12}  "
                    f"{percent(r['churn_rate_by_band'][band]):>10}"
                    for r in reports
                ],
            )
        line(
            "all",
            [
                f"{r['observations']:>12}  {percent(r['churn_rate']):>10}"
                for r in reports
            ],
        )
        line("AUC", [number(r["auc"]) for r in reports])
        line("AUC 95 % CI, by customer*", [interval(r["auc_ci95"]) for r in reports])
        line(
            "AUC 95 % CI, independent",
            [interval(r["auc_ci95_independent"]) for r in reports],
        )
        line("verdict", [r["verdict"] for r in reports])
        line(
            "lift, two lowest bands",
            [number(r["lift_lowest_bands"], 2) for r in reports],
        )
        line("false greens", [str(r["false_greens"]) for r in reports])
        line(
            "overrides right / judged",
            [
                f"{r['overrides']['right']} / "
                f"{r['overrides']['right'] + r['overrides']['wrong']}"
                for r in reports
            ],
        )
        self.stdout.write(
            f"* {backtest.CI_METHOD}: a customer's month ends are one cluster "
            "of observations. An interval holding 0.5 is no better than chance."
        )
