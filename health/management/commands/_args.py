"""Argument types that commands share."""

from argparse import ArgumentTypeError
from datetime import date


def iso_date(value: str) -> date:
    """A ``YYYY-MM-DD`` date; argparse turns the error into a usage message."""
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ArgumentTypeError(f"{value!r} is not a date in YYYY-MM-DD form") from exc
