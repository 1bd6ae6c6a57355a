"""Argument types that commands share."""

from argparse import ArgumentTypeError
from datetime import date
from pathlib import Path


def iso_date(value: str) -> date:
    """A ``YYYY-MM-DD`` date; argparse turns the error into a usage message."""
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ArgumentTypeError(f"{value!r} is not a date in YYYY-MM-DD form") from exc


def writable_path(value: str) -> str:
    """A file path whose folder exists and that is not itself a folder, so a
    long command fails at once instead of after its work."""
    path = Path(value)
    if path.is_dir():
        raise ArgumentTypeError(f"{value!r} is a folder, not a file")
    if not path.parent.is_dir():
        raise ArgumentTypeError(f"the folder of {value!r} does not exist")
    return value
