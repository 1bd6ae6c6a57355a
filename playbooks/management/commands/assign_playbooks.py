"""Assign the playbooks whose band must hold for more than one daily snapshot.

A band change fires once, on the day it happens; a playbook that waits for the
band to hold two or more days is assigned by this check, run after each day's
scoring."""

from django.core.management.base import BaseCommand

from health.management.commands._args import iso_date
from playbooks import services


class Command(BaseCommand):
    help = (
        "Assign playbooks whose required hold (consecutive daily snapshots in "
        "the band) is reached at the customers' newest snapshot on a date."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of", type=iso_date, help="The scored date (default: today, UTC)."
        )

    def handle(self, *args, as_of, **options):
        count = services.assign_held_playbooks(as_of=as_of)
        self.stdout.write(f"{count} assignments")
