"""Give the demo book's customers the playbooks of their current bands, so
that every demo CSM has work to show. Demo only: in real use, work comes from
band changes."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from playbooks import services


def iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a date in YYYY-MM-DD form") from exc


class Command(BaseCommand):
    help = (
        "After build_demo: assign each current customer without open work the "
        "playbooks of its band at its newest snapshot on --as-of."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of", type=iso_date, help="The book's today (default: today, UTC)."
        )

    def handle(self, *args, as_of, **options):
        count = services.seed_demo_assignments(as_of=as_of)
        self.stdout.write(f"{count} demo assignments")
