"""Commands refuse bad arguments before doing any work."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from health import jobs
from health.models import JobRun, ScoreSnapshot
from tests.factories import customer_with_inputs


def test_score_refuses_a_date_after_today(db):
    customer_with_inputs(1, jobs.today())
    tomorrow = jobs.today() + timedelta(days=1)

    with pytest.raises(CommandError, match="is after today"):
        call_command("score", f"--as-of={tomorrow}")

    assert not JobRun.objects.exists()
    assert not ScoreSnapshot.objects.exists()


def test_score_refuses_a_range_ending_after_today(db):
    today = jobs.today()

    with pytest.raises(CommandError, match="is after today"):
        call_command("score", f"--from={today}", f"--to={today + timedelta(days=3)}")


def test_score_refuses_a_backfill_of_more_than_ten_years_of_days(db):
    with pytest.raises(CommandError, match="use --every"):
        call_command("score", "--from=1900-01-01", "--to=2000-01-01")

    assert not JobRun.objects.exists()


def test_score_refuses_a_date_that_does_not_exist(db):
    with pytest.raises(CommandError, match="'2024-02-30' is not a date"):
        call_command("score", "--as-of=2024-02-30")


def test_build_demo_refuses_a_future_date(db):
    with pytest.raises(CommandError, match="is after today"):
        call_command("build_demo", "--customers=5", "--as-of=2999-01-01")


@pytest.mark.parametrize(
    "command",
    [
        ["export_scores", "-o"],
        ["backtest", "--json"],
        ["whatif", "--model=Default:1", "--json"],
    ],
)
def test_output_into_a_missing_folder_is_refused_before_any_work(db, tmp_path, command):
    target = tmp_path / "missing" / "out.file"

    with pytest.raises(CommandError, match="does not exist"):
        call_command(*command, str(target))

    with pytest.raises(CommandError, match="is a folder"):
        call_command(*command, str(tmp_path))
