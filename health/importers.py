"""Imports of the canonical kinds (users, customers, readings, tickets, nps,
opportunities, interactions, pulses) from CSV or XLSX files.

Each kind is one declarative ``Spec``: its columns, the parser of each, which
are required, its natural key and the rules that span columns. The rules of
a kind therefore read in one place, in ``SPECS``.

An import reads the file once and writes in two steps, all in one
transaction:

1. *validate*: stream the file, parse every row once, resolve references
   (customers, users, metrics, roles) against maps loaded once, and collect
   every bad row. The good rows, as parsed, go where step 2 reads them: on
   PostgreSQL, for the kinds ``import_staging`` takes (readings, tickets,
   NPS, opportunities), a TEMP table filled by COPY; otherwise a spool file,
   a batch at a time. Otherwise only compact data is kept: the natural keys
   seen (to catch a key twice in one file), the numbers of bad lines and the
   error messages.
2. *write*: compare the good rows with what is stored under the same
   natural keys, then create or update: in sets from the staging table, or
   in bulk a batch at a time from the spool. A dry run compares without
   writing.

A file with a bad row writes nothing unless the bad rows are to be skipped.
Natural keys make a second import of the same file change nothing.
"""

from __future__ import annotations

import calendar
import codecs
import csv
import io
import logging
import math
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models, transaction
from django.utils import timezone

from health import import_staging, jobs
from health.import_staging import Counts
from health.models import (
    Customer,
    ImportBatch,
    Interaction,
    Metric,
    MetricReading,
    NpsResponse,
    Opportunity,
    Pulse,
    Ticket,
)
from workbench.roles import ROLES

logger = logging.getLogger(__name__)

# Rows compared and written per round trip. A batch costs a fixed handful of
# queries, so the cost of an import grows with rows / BATCH_SIZE.
BATCH_SIZE = 1000

# Called as (stage, done, total): stage "checking" counts bytes of a CSV file
# (total 0 when unknown, as in XLSX: then done counts rows), stage "writing"
# counts good rows.
Progress = Callable[[str, int, int], None]

# Rows between two progress reports while checking.
PROGRESS_EVERY = 5000


class BadValue(ValueError):
    """A cell that cannot be used; the message is the reason a person reads."""


class ImportFailed(Exception):
    """The file cannot be imported as it is; nothing was written."""

    def __init__(self, message: str, errors: list[str]) -> None:
        super().__init__("\n".join([message, *errors]))
        self.message = message
        self.errors = errors


class DateOrderNeeded(Exception):
    """A date such as 03/04/2024 met before the import knows whether days or
    months come first; the importer then asks the whole file."""


# --- How a file is read -------------------------------------------------------

CUSTOMER_FIELDS = {
    "external_id": "CRM account id",
    "support_id": "support desk id",
    "analytics_id": "product analytics id",
    "name": "name",
}
DATE_ORDERS = {"dmy": "day first", "mdy": "month first"}
THOUSANDS_SEPARATORS = {",": "comma", ".": "point", " ": "space", "'": "apostrophe"}
MISSING_WORDS = frozenset({"na", "n/a", "-", "null"})


@dataclass(frozen=True)
class Options:
    """What a file's cells mean beyond the canonical defaults. Empty fields
    keep the defaults: encoding detected, ISO dates (or an order the file
    proves), a decimal point, no thousands separator, only an empty cell
    missing, customers by CRM account id."""

    encoding: str = ""
    date_order: str = ""  # "", "dmy" or "mdy"
    decimal_comma: bool = False
    thousands_separator: str = ""
    true_words: frozenset[str] = frozenset()
    false_words: frozenset[str] = frozenset()
    missing_values: frozenset[str] = frozenset()
    customer_field: str = "external_id"

    def merged(self, **overrides: Any) -> Options:
        """These options with every override that is set (not a default)."""
        defaults = Options()
        return replace(
            self,
            **{k: v for k, v in overrides.items() if v != getattr(defaults, k)},
        )


@dataclass(frozen=True)
class Mapping:
    """How the columns of another tool's export become a kind's columns: an
    import profile, resolved. Cells are looked up by file header (case and
    surrounding spaces ignored); other columns of the file are ignored."""

    columns: dict[str, str]  # canonical column -> file header
    constants: dict[str, str] = field(default_factory=dict)  # column -> value
    # canonical column -> {file value: canonical value}; matched ignoring case
    # and surrounding spaces; an empty canonical value means missing.
    value_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    options: Options = Options()


# --- What rows refer to ------------------------------------------------------

# How far past the import's start a record's moment may lie.
FUTURE_SLACK = timedelta(days=1)

# An email that more than one user has names no one in particular.
AMBIGUOUS = -1


class Lookups:
    """The things rows refer to, loaded once per import (one query per map
    the kind needs) and kept as compact maps while the file streams past."""

    def __init__(
        self,
        needs: Iterable[str],
        options: Options | None = None,
        spreadsheet: bool = False,
    ) -> None:
        needs = set(needs)
        self.options = options or Options()
        self.spreadsheet = spreadsheet  # numbers in date cells are Excel serials
        self.customers: dict[str, int] = {}
        self.users: dict[str, int] = {}
        self.usernames: set[str] = set()
        self.metrics: dict[str, tuple[int, str]] = {}
        # metric id -> (key, unit), for the range a reading may take.
        self.metric_units: dict[int, tuple[str, str]] = {}
        # metric id -> (lowest, highest or None) or None, from its unit.
        self.reading_ranges: dict[int, tuple[float, float | None] | None] = {}
        self.roles: dict[str, int] = {}
        # Moments after this are in the future. A day of slack covers clocks
        # and time zones; fixed once, so a row reads the same if pass one
        # starts again.
        self.latest = timezone.now() + FUTURE_SLACK

        if "customers" in needs:
            # Only external ids are unique; a support id, analytics id or name
            # that several customers share names none of them.
            by = self.options.customer_field
            for value, pk in Customer.objects.values_list(by, "pk").iterator():
                key = _customer_key(by, value)
                if key:
                    self.customers[key] = AMBIGUOUS if key in self.customers else pk
        if "users" in needs:
            for pk, username, email in (
                get_user_model()
                .objects.values_list("pk", "username", "email")
                .iterator()
            ):
                self.usernames.add(username.lower())
                if email:
                    key = email.lower()
                    self.users[key] = AMBIGUOUS if key in self.users else pk
        if "metrics" in needs:
            for pk, key, source, unit in Metric.objects.values_list(
                "pk", "key", "source", "unit"
            ):
                self.metrics[key] = (pk, source)
                self.metric_units[pk] = (key, unit)
                self.reading_ranges[pk] = reading_range(key, unit)
        if "roles" in needs:
            self.roles = dict(
                Group.objects.filter(name__in=ROLES).values_list("name", "pk")
            )


def _customer_key(by: str, value: str) -> str:
    value = value.strip()
    return value.casefold() if by == "name" else value


# --- Parsers -----------------------------------------------------------------

# A parser turns the stripped, non-empty text of a cell into the value that
# lands in the model, or raises BadValue with the reason.
Parser = Callable[[str, Lookups], Any]

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# An ISO date-time: the date, then T or a space and a time of day.
ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:.*")
TRUE_WORDS = {"true", "1", "yes"}
FALSE_WORDS = {"false", "0", "no"}


# How much of a cell a message quotes: a cell can hold a whole paragraph, or
# the junk of a file that is no CSV at all.
SHOWN_CHARACTERS = 40


def shown(value: str) -> str:
    """A cell quoted for a message: control characters escaped (repr), and
    cut short with an ellipsis past SHOWN_CHARACTERS."""
    if len(value) > SHOWN_CHARACTERS:
        value = value[: SHOWN_CHARACTERS - 1] + "…"
    return repr(value)


def text(model: type[models.Model], name: str) -> Parser:
    limit = model._meta.get_field(name).max_length

    def parse(value: str, lookups: Lookups) -> str:
        if limit and len(value) > limit:
            raise BadValue(f"is longer than {limit} characters")
        return value

    return parse


def long_text(value: str, lookups: Lookups) -> str:
    return value


# 03/04/2024, 3.4.2024, 03-04-2024: day or month first, four-digit year.
NUMERIC_DATE = re.compile(r"(\d{1,2})([./-])(\d{1,2})\2(\d{4})")
CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
SERIAL = re.compile(r"\d{1,7}(\.\d+)?")
# Excel's day 0 is 1899-12-30 for every serial after its phantom 1900-02-29
# (serial 60); earlier serials count from 1899-12-31.
EXCEL_EPOCH = datetime(1899, 12, 30)  # noqa: DTZ001 (a calendar day, no zone)
EXCEL_LAST_SERIAL = 2958465  # 9999-12-31


def _calendar_date(year: int, month: int, day: int) -> date | None:
    """The date, or None when the calendar has no such day."""
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _no_such_day(value: str, year: int, month: int, day: int) -> BadValue:
    """Why a date of the right shape is not a date: the month or the day."""
    if not 1 <= month <= 12:
        return BadValue(f"{shown(value)} is not a date: there is no month {month}")
    if year < 1:
        return BadValue(f"{shown(value)} is not a date: there is no year {year}")
    if day < 1:
        return BadValue(f"{shown(value)} is not a date: there is no day {day}")
    days = calendar.monthrange(year, month)[1]
    return BadValue(
        f"{shown(value)} is not a date: {calendar.month_name[month]} {year} "
        f"has {days} days, not {day}"
    )


def _numeric_date(match: re.Match, value: str, lookups: Lookups) -> date:
    order = lookups.options.date_order
    if not order:
        raise DateOrderNeeded(value)
    first, _, second, year = match.groups()
    day, month = (first, second) if order == "dmy" else (second, first)
    result = _calendar_date(int(year), int(month), int(day))
    if result is None:
        problem = _no_such_day(value, int(year), int(month), int(day))
        raise BadValue(f"{problem} ({DATE_ORDERS[order]}, as set)")
    return result


def _iso_calendar_date(value: str) -> date:
    """The YYYY-MM-DD at the start of ``value``; BadValue naming the month or
    day the calendar does not have."""
    year, month, day = int(value[:4]), int(value[5:7]), int(value[8:10])
    result = _calendar_date(year, month, day)
    if result is None:
        raise _no_such_day(value, year, month, day)
    return result


def _excel_serial(value: str, lookups: Lookups) -> datetime | None:
    if not (lookups.spreadsheet and SERIAL.fullmatch(value)):
        return None
    serial = float(value)
    if not 1 <= serial <= EXCEL_LAST_SERIAL or 60 <= serial < 61:
        return None
    days = serial if serial >= 61 else serial - 1
    moment = EXCEL_EPOCH + timedelta(days=days)
    # A serial's fraction is a time of day; keep whole seconds.
    return moment.replace(microsecond=0) + timedelta(
        seconds=round(moment.microsecond / 1e6)
    )


def iso_date(value: str, lookups: Lookups) -> date:
    """ISO YYYY-MM-DD; a day-first or month-first date when the import says
    which or the file proves it; an Excel serial in a spreadsheet. A
    date-time at exactly midnight is its date (spreadsheets store dates as
    date-times); any other time of day is refused, not dropped."""
    if len(value) == 10 and value[4] == "-" == value[7]:
        # Most cells are plain YYYY-MM-DD, which fromisoformat reads fastest.
        # Of this shape it takes ASCII digits and real days only; anything
        # else it refuses goes the long way, to be read or named.
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    if ISO_DATE.fullmatch(value):
        return _iso_calendar_date(value)
    match = NUMERIC_DATE.fullmatch(value)
    if match:
        return _numeric_date(match, value, lookups)
    moment = None
    if ISO_DATETIME.fullmatch(value):
        _iso_calendar_date(value)
        with suppress(ValueError):
            moment = datetime.fromisoformat(value)
    else:
        moment = _excel_serial(value, lookups)
    if moment is not None:
        if moment.time() != time(0):
            raise BadValue(f"{shown(value)} is a date-time, expected a date")
        return moment.date()
    raise BadValue(f"{shown(value)} is not a date in YYYY-MM-DD form")


def iso_datetime(value: str, lookups: Lookups) -> datetime:
    """ISO 8601, or a date as ``iso_date`` reads it with an optional HH:MM(:SS)
    after a space; without an offset, UTC."""
    moment = None
    if ISO_DATE.match(value):
        _iso_calendar_date(value)
        with suppress(ValueError):
            moment = datetime.fromisoformat(value)
    else:
        day_text, _, clock_text = value.partition(" ")
        match = NUMERIC_DATE.fullmatch(day_text)
        clock = CLOCK.fullmatch(clock_text.strip()) if clock_text else None
        if match and (clock or not clock_text):
            day = _numeric_date(match, day_text, lookups)
            hours, minutes, seconds = clock.groups() if clock else (0, 0, 0)
            with suppress(ValueError):
                moment = datetime.combine(
                    day, time(int(hours), int(minutes), int(seconds or 0))
                )
        elif not clock_text:
            moment = _excel_serial(value, lookups)
    if moment is None:
        raise BadValue(f"{shown(value)} is not an ISO 8601 date-time")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


DATE_PARSERS = (iso_date, iso_datetime)


def _number_text(value: str, lookups: Lookups) -> str:
    """The text of a number in Python's form: thousands separators and a
    decimal comma taken out only where the import says the file has them."""
    options = lookups.options
    decimal = "," if options.decimal_comma else "."
    separator = options.thousands_separator
    text = value
    if separator == " ":
        # Spreadsheets group with a no-break or narrow no-break space too.
        text = text.replace("\u00a0", " ").replace("\u202f", " ")
    if separator and separator in text:
        grouped = (
            rf"[+-]?\d{{1,3}}(?:{re.escape(separator)}\d{{3}})+"
            rf"(?:{re.escape(decimal)}\d*)?"
        )
        if not re.fullmatch(grouped, text):
            raise BadValue(
                f"{shown(value)} is not a number with thousands grouped by "
                f"{THOUSANDS_SEPARATORS[separator]}"
            )
        text = text.replace(separator, "")
    if decimal == ",":
        if "." in text:
            raise BadValue(f"{shown(value)} has a decimal point; this file has commas")
        text = text.replace(",", ".")
    return text


def _not_a_number(value: str, lookups: Lookups) -> BadValue:
    hint = ""
    if "," in value and not lookups.options.decimal_comma:
        hint = " (a decimal comma or thousands separator needs a profile saying so)"
    return BadValue(f"{shown(value)} is not a number{hint}")


def _not_finite(value: str, text: str) -> BadValue:
    """Why a number that parsed is no value to keep: NaN, an infinity, or
    digits beyond what a float can hold (which Python reads as infinite)."""
    word = text.strip().lstrip("+-").lower()
    if word in {"nan", "snan"}:
        return BadValue(f"{shown(value)} is not a number")
    if word in {"inf", "infinity"}:
        return BadValue(f"{shown(value)} is not a finite number")
    return BadValue(f"{shown(value)} is too large (at most about 1.8e308)")


def number(value: str, lookups: Lookups) -> float:
    options = lookups.options
    plain = not (options.decimal_comma or options.thousands_separator)
    # Without a decimal comma or thousands separator the text is Python's.
    text = value if plain else _number_text(value, lookups)
    try:
        result = float(text)
    except ValueError:
        raise _not_a_number(value, lookups) from None
    if not math.isfinite(result):
        raise _not_finite(value, text)
    return result


def money(model: type[models.Model], name: str, *, negative: bool = True) -> Parser:
    """A decimal rounded half up to the field's places, within its digits;
    with ``negative`` False, zero or more."""
    model_field = model._meta.get_field(name)
    places = Decimal(1).scaleb(-model_field.decimal_places)
    limit = Decimal(10) ** (model_field.max_digits - model_field.decimal_places)
    largest = f"{limit - places:,}"

    def parse(value: str, lookups: Lookups) -> Decimal:
        text = _number_text(value, lookups)
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise _not_a_number(value, lookups) from None
        if result.is_nan():
            raise BadValue(f"{shown(value)} is not a number")
        if result.is_infinite():
            raise BadValue(f"{shown(value)} is not a finite number")
        # The size is checked before rounding: quantize() raises on a number
        # with more digits than the decimal context holds (28), such as 1e30.
        if abs(result) >= limit:
            raise BadValue(f"{shown(value)} is too large (at most {largest})")
        result = result.quantize(places, rounding=ROUND_HALF_UP)
        if abs(result) >= limit:  # rounded up to the limit: 9…9.995
            raise BadValue(f"{shown(value)} is too large (at most {largest})")
        if result < 0 and not negative:
            raise BadValue(f"{shown(value)} is negative")
        return result

    return parse


def whole_number(low: int, high: int) -> Parser:
    def parse(value: str, lookups: Lookups) -> int:
        try:
            result = int(_number_text(value, lookups))
        except ValueError:
            raise BadValue(f"{shown(value)} is not a whole number") from None
        if not low <= result <= high:
            raise BadValue(f"{shown(value)} is not between {low} and {high}")
        return result

    return parse


def sentiment(value: str, lookups: Lookups) -> int:
    if value not in {"-1", "0", "1", "+1"}:
        raise BadValue(f"{shown(value)} is not -1, 0 or 1")
    return int(value)


def boolean(value: str, lookups: Lookups) -> bool:
    word = value.lower()
    if word in TRUE_WORDS or word in lookups.options.true_words:
        return True
    if word in FALSE_WORDS or word in lookups.options.false_words:
        return False
    extra = sorted(lookups.options.true_words | lookups.options.false_words)
    words = "true/false, 1/0 or yes/no" + "".join(f", {w}" for w in extra)
    raise BadValue(f"{shown(value)} is not {words}")


def choice(choices: type[models.TextChoices]) -> Parser:
    allowed = list(choices.values)

    def parse(value: str, lookups: Lookups) -> str:
        word = value.lower()
        if word not in allowed:
            raise BadValue(f"{shown(value)} is not one of {', '.join(allowed)}")
        return word

    return parse


def customer(value: str, lookups: Lookups) -> int:
    by = lookups.options.customer_field
    pk = lookups.customers.get(_customer_key(by, value))
    if pk is not None and pk != AMBIGUOUS:
        return pk
    label = "external id" if by == "external_id" else CUSTOMER_FIELDS[by]
    if pk is None:
        raise BadValue(f"no customer has {label} {shown(value)}")
    if pk == AMBIGUOUS:
        raise BadValue(f"more than one customer has {label} {shown(value)}")
    return pk


def user(value: str, lookups: Lookups) -> int:
    pk = lookups.users.get(value.lower())
    if pk is None:
        raise BadValue(f"no user has email {shown(value)}")
    if pk == AMBIGUOUS:
        raise BadValue(f"more than one user has email {shown(value)}")
    return pk


def imported_metric(value: str, lookups: Lookups) -> int:
    found = lookups.metrics.get(value)
    if found is None:
        raise BadValue(f"no metric has key {shown(value)}")
    pk, source = found
    if source != Metric.Source.IMPORTED:
        raise BadValue(
            f"metric {shown(value)} is derived from activity records, not imported"
        )
    return pk


def email(value: str, lookups: Lookups) -> str:
    try:
        validate_email(value)
    except ValidationError:
        raise BadValue(f"{shown(value)} is not an email address") from None
    return value.lower()


def role(value: str, lookups: Lookups) -> int:
    pk = lookups.roles.get(value)
    if pk is None:
        raise BadValue(f"{shown(value)} is not a role ({', '.join(ROLES)})")
    return pk


# --- Specs -------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    field: str  # the model attribute the parsed value lands in
    parse: Parser
    required: bool = True
    default: Any = None  # the value of an empty optional cell


# A rule across the columns of a parsed row: (column, reason) when broken.
RowCheck = Callable[[dict[str, Any], Lookups], tuple[str, str] | None]


@dataclass(frozen=True)
class Spec:
    kind: str
    model: type[models.Model]
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # fields of the natural key
    needs: frozenset[str] = frozenset()  # the maps of Lookups it uses
    checks: tuple[RowCheck, ...] = ()
    # Turns a natural key into something smaller to remember; a file of a
    # million readings keeps a million of them during validation.
    compact_key: Callable[[tuple], Hashable] = tuple

    @property
    def header(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def key_columns(self) -> list[str]:
        by_field = {c.field: c.name for c in self.columns}
        return [by_field[f] for f in self.key]

    @property
    def fields(self) -> list[str]:
        """The fields of a parsed row, in column order."""
        return [c.field for c in self.columns]

    def key_of(self, values: dict[str, Any]) -> tuple:
        return tuple([values[f] for f in self.key])


def not_before(earlier: str, later: str, later_column: str) -> RowCheck:
    """The ``later`` field is not before the ``earlier`` one (either may be
    missing)."""

    def check(values: dict[str, Any], lookups: Lookups) -> tuple[str, str] | None:
        first, second = values[earlier], values[later]
        if first is not None and second is not None and second < first:
            return later_column, f"is before {earlier}"
        return None

    return check


def not_in_future(name: str, column: str) -> RowCheck:
    """A moment that has happened: at most FUTURE_SLACK past the import."""

    def check(values: dict[str, Any], lookups: Lookups) -> tuple[str, str] | None:
        moment = values[name]
        if moment is not None and moment > lookups.latest:
            return column, f"'{moment:%Y-%m-%dT%H:%M:%SZ}' is in the future"
        return None

    return check


# The values a reading may take, by its metric's unit: (lowest, highest or
# None). Units not listed (score, mean, rating...) take any number.
UNIT_RANGES: dict[str, tuple[float, float | None]] = {
    "ratio": (0, 1),
    "count": (0, None),
    "days": (0, None),
    "hours": (0, None),
}
# A key ending in _<N>d counts over an N-day window: "the last 30 days"
# counted with both ends touches 31 calendar days.
WINDOW = re.compile(r"_(\d+)d$")


def reading_range(key: str, unit: str) -> tuple[float, float | None] | None:
    """The (lowest, highest) a reading of the metric may take, or None."""
    bounds = UNIT_RANGES.get(unit)
    if bounds is None:
        return None
    low, high = bounds
    window = WINDOW.search(key)
    if unit == "days" and window:
        high = int(window.group(1)) + 1
    return low, high


def reading_in_range(
    values: dict[str, Any], lookups: Lookups
) -> tuple[str, str] | None:
    bounds = lookups.reading_ranges[values["metric_id"]]
    if bounds is None:
        return None
    low, high = bounds
    value = values["value"]
    if low <= value and (high is None or value <= high):
        return None
    key, unit = lookups.metric_units[values["metric_id"]]
    if high is None and value < low:
        return "value", f"'{value:g}' is negative ({key}, unit {unit})"
    if value < low or (high is not None and value > high):
        return (
            "value",
            f"'{value:g}' is not between {low} and {high} ({key}, unit {unit})",
        )
    return None


def new_user_has_free_username(
    values: dict[str, Any], lookups: Lookups
) -> tuple[str, str] | None:
    """A new user's username is their email; it must be free and fit."""
    existing = lookups.users.get(values["email"])
    if existing == AMBIGUOUS:
        return "email", f"more than one user has email {values['email']!r}"
    if existing is None:
        limit = get_user_model()._meta.get_field("username").max_length
        if len(values["email"]) > limit:
            return "email", f"is longer than {limit} characters, too long a username"
        if values["email"] in lookups.usernames:
            return "email", "is the username of a user with another email"
    return None


def reading_key(key: tuple) -> int:
    # Customer and metric ids and a date ordinal packed into one int: a third
    # of the memory of the tuple. Ordinals stay below 2**22, metric ids do too.
    customer_id, metric_id, observed_on = key
    return (customer_id << 44) | (metric_id << 22) | observed_on.toordinal()


User = get_user_model()

SPECS: dict[str, Spec] = {
    spec.kind: spec
    for spec in [
        Spec(
            kind="users",
            model=User,
            columns=(
                Column("email", "email", email),
                Column("first_name", "first_name", text(User, "first_name"), False, ""),
                Column("last_name", "last_name", text(User, "last_name"), False, ""),
                Column("role", "role", role),
            ),
            key=("email",),
            needs=frozenset({"users", "roles"}),
            checks=(new_user_has_free_username,),
        ),
        Spec(
            kind="customers",
            model=Customer,
            columns=(
                Column("external_id", "external_id", text(Customer, "external_id")),
                Column("name", "name", text(Customer, "name")),
                Column("segment", "segment", text(Customer, "segment"), False, ""),
                Column(
                    "arr",
                    "arr",
                    money(Customer, "arr", negative=False),
                    False,
                    Decimal("0.00"),
                ),
                Column("owner_email", "owner_id", user, False),
                Column("customer_since", "customer_since", iso_date, False),
                Column("renewal_date", "renewal_date", iso_date, False),
                Column("churned_on", "churned_on", iso_date, False),
            ),
            key=("external_id",),
            needs=frozenset({"users"}),
            checks=(
                not_before("customer_since", "renewal_date", "renewal_date"),
                not_before("customer_since", "churned_on", "churned_on"),
            ),
        ),
        Spec(
            kind="readings",
            model=MetricReading,
            columns=(
                Column("customer", "customer_id", customer),
                Column("metric", "metric_id", imported_metric),
                Column("value", "value", number),
                Column("observed_on", "observed_on", iso_date),
            ),
            key=("customer_id", "metric_id", "observed_on"),
            needs=frozenset({"customers", "metrics"}),
            checks=(reading_in_range,),
            compact_key=reading_key,
        ),
        Spec(
            kind="tickets",
            model=Ticket,
            columns=(
                Column("external_id", "external_id", text(Ticket, "external_id")),
                Column("customer", "customer_id", customer),
                Column("opened_at", "opened_at", iso_datetime),
                Column("closed_at", "closed_at", iso_datetime, False),
                Column("priority", "priority", text(Ticket, "priority"), False, ""),
                Column("escalated", "escalated", boolean, False, False),
                Column("satisfaction", "satisfaction", number, False),
            ),
            key=("external_id",),
            needs=frozenset({"customers"}),
            checks=(
                not_in_future("opened_at", "opened_at"),
                not_before("opened_at", "closed_at", "closed_at"),
            ),
        ),
        Spec(
            kind="nps",
            model=NpsResponse,
            columns=(
                Column("customer", "customer_id", customer),
                Column("contact", "contact", text(NpsResponse, "contact")),
                Column("score", "score", whole_number(0, 10)),
                Column("responded_at", "responded_at", iso_datetime),
                Column("comment", "comment", long_text, False, ""),
            ),
            key=("customer_id", "contact", "responded_at"),
            needs=frozenset({"customers"}),
            checks=(not_in_future("responded_at", "responded_at"),),
        ),
        Spec(
            kind="opportunities",
            model=Opportunity,
            columns=(
                Column("external_id", "external_id", text(Opportunity, "external_id")),
                Column("customer", "customer_id", customer),
                Column("product", "product", text(Opportunity, "product"), False, ""),
                Column("kind", "kind", choice(Opportunity.Kind)),
                Column("stage", "stage", choice(Opportunity.Stage)),
                Column(
                    "amount",
                    "amount",
                    money(Opportunity, "amount"),
                    False,
                    Decimal("0.00"),
                ),
                Column("created_on", "created_on", iso_date),
                Column("closed_on", "closed_on", iso_date, False),
            ),
            key=("external_id",),
            needs=frozenset({"customers"}),
            checks=(not_before("created_on", "closed_on", "closed_on"),),
        ),
        Spec(
            kind="interactions",
            model=Interaction,
            columns=(
                Column("customer", "customer_id", customer),
                Column("csm_email", "csm_id", user),
                Column("kind", "kind", choice(Interaction.Kind)),
                Column("occurred_at", "occurred_at", iso_datetime),
                Column("sentiment", "sentiment", sentiment, False, 0),
                Column("summary", "summary", long_text, False, ""),
            ),
            key=("customer_id", "occurred_at", "kind", "csm_id"),
            needs=frozenset({"customers", "users"}),
            checks=(not_in_future("occurred_at", "occurred_at"),),
        ),
        Spec(
            kind="pulses",
            model=Pulse,
            columns=(
                Column("customer", "customer_id", customer),
                Column("csm_email", "csm_id", user),
                Column("rating", "rating", whole_number(1, 5)),
                Column("entered_at", "entered_at", iso_datetime),
                Column("note", "note", long_text, False, ""),
            ),
            key=("customer_id", "csm_id", "entered_at"),
            needs=frozenset({"customers", "users"}),
            checks=(not_in_future("entered_at", "entered_at"),),
        ),
    ]
}

KINDS = tuple(SPECS)


# --- Reading files -----------------------------------------------------------

# Bytes that Windows-1252 leaves undefined; a non-UTF-8 file holding one is
# read as Latin-1, which defines every byte.
CP1252_HOLES = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")
DELIMITERS = (",", ";", "\t")
ENCODING_NAMES = {
    "utf-8-sig": "UTF-8",
    "utf-16": "UTF-16",
    "cp1252": "Windows-1252",
    "latin-1": "Latin-1",
}


def detect_encoding(path: Path) -> str:
    """UTF-8 (a byte-order mark or not) when every byte of the file decodes
    as UTF-8, UTF-16 when it starts with its mark, else Windows-1252, or
    Latin-1 if a byte is one Windows-1252 does not define. Reads the file
    once, a megabyte at a time."""
    with path.open("rb") as handle:
        start = handle.read(4)
        if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := handle.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return "utf-8-sig"
        except UnicodeDecodeError:
            pass

        handle.seek(0)
        while chunk := handle.read(1 << 20):
            if any(hole in chunk for hole in CP1252_HOLES):
                return "latin-1"
    return "cp1252"


def _line_of_offset(path: Path, offset: int) -> int:
    with path.open("rb") as handle:
        return handle.read(offset).count(b"\n") + 1


def _refuse_binary(path: Path, name: str) -> None:
    """ImportFailed when a file meant as CSV text is a ZIP archive (an XLSX
    workbook under the wrong name, say) or has a header line no text file
    has: a NUL byte or control characters. A NUL further down is a bad row
    of its own; only the header is judged here."""
    with path.open("rb") as handle:
        start = handle.read(SNIFF_BYTES)
    if start.startswith(ZIP_MAGIC):
        raise ImportFailed(
            f"{name} does not look like a text file: it is a ZIP archive "
            "(an XLSX workbook must be named .xlsx)",
            [],
        )
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return
    header = start.split(b"\n", 1)[0]
    controls = {chr(byte) for byte in header if byte < 32 or byte == 127}
    if controls - TEXT_CONTROLS:
        raise ImportFailed(
            f"{name} does not look like a text file: its first line holds "
            "control characters or NUL bytes",
            [],
        )


def _cell_text(value: Any) -> str:
    """A spreadsheet cell as the text a CSV file would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.time() == datetime.min.time() and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class UnsavedFormula(str):
    """The empty text of an XLSX formula cell saved without its value
    (written by a program that does not calculate, such as openpyxl)."""


# A formula element in a sheet's XML, with or without a namespace prefix.
FORMULA_TAG = re.compile(rb"<(?:\w+:)?f[\s/>]")
# The first bytes of a ZIP archive, which an XLSX workbook is.
ZIP_MAGIC = b"PK\x03\x04"
# How much of the file's start is read to tell text from binary.
SNIFF_BYTES = 1 << 16
# The control characters a text file's header line may hold.
TEXT_CONTROLS = frozenset("\t\r\n")


@dataclass
class Source:
    """A file to import and how to read it: CSV in an encoding with a
    delimiter, both detected unless given, or the first sheet of an XLSX.
    ``name`` is the file's name in messages (an upload's own name, not the
    name of its temporary copy)."""

    path: Path
    spreadsheet: bool = False
    encoding: str = ""
    delimiter: str = ","
    name: str = ""
    # Row -> columns of formula cells with no saved value; found once.
    _unsaved: dict[int, list[int]] | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, path: Path, encoding: str = "", name: str = "") -> Source:
        name = name or path.name
        if path.suffix.lower() in {".xlsx", ".xlsm"}:
            if not zipfile.is_zipfile(path):
                raise ImportFailed(f"{name} is not an XLSX workbook", [])
            return cls(path, spreadsheet=True, name=name)
        if encoding:
            try:
                encoding = codecs.lookup(encoding).name
            except LookupError:
                raise ImportFailed(f"unknown encoding {encoding!r}", []) from None
        _refuse_binary(path, name)
        source = cls(path, encoding=encoding or detect_encoding(path), name=name)
        source.delimiter = source._detect_delimiter()
        return source

    @property
    def description(self) -> str:
        if self.spreadsheet:
            return "XLSX, first sheet"
        names = {",": "comma", ";": "semicolon", "\t": "tab"}
        encoding = ENCODING_NAMES.get(self.encoding, self.encoding)
        return f"{encoding} text, {names[self.delimiter]}-separated"

    def _detect_delimiter(self) -> str:
        # The header names the columns, so the delimiter is the one it holds
        # most of; a one-column file has none and takes the comma.
        try:
            with self.path.open(encoding=self.encoding, newline="") as handle:
                header = handle.readline()
        except UnicodeDecodeError:
            return ","
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(DELIMITERS, key=lambda d: counts[d])
        return best if counts[best] else ","

    def rows(self, progress: Progress | None = None) -> Iterator[tuple[int, list[str]]]:
        """(line, cells) for every non-blank row, the header first; streamed.
        With ``progress``, reports how far the reading is now and then."""
        if self.spreadsheet:
            return self._xlsx_rows(progress)
        return self._csv_rows(progress)

    def _csv_rows(self, progress: Progress | None) -> Iterator[tuple[int, list[str]]]:
        size = self.path.stat().st_size
        with self.path.open("rb") as raw:
            # Reading through the binary file lets progress tell how far
            # into the file the reader is.
            handle = io.TextIOWrapper(raw, encoding=self.encoding, newline="")
            reader = csv.reader(handle, delimiter=self.delimiter)
            line = 1
            try:
                for count, cells in enumerate(reader, start=1):
                    # A quoted cell may span lines; a row starts on the line
                    # after the end of the one before.
                    cells = [cell.strip() for cell in cells]
                    if any(cells):
                        yield line, cells
                    line = reader.line_num + 1
                    if progress and count % PROGRESS_EVERY == 0:
                        progress("checking", raw.tell(), size)
            except UnicodeDecodeError as exc:
                name = ENCODING_NAMES.get(self.encoding, self.encoding)
                line = self._undecodable_line() or line
                raise ImportFailed(
                    f"{self.name}: not {name} text on line {line} "
                    f"({exc.reason}); name the encoding with --encoding",
                    [],
                ) from None
            except csv.Error as exc:
                raise ImportFailed(f"{self.name}: line {line}: {exc}", []) from None

    def _undecodable_line(self) -> int | None:
        """The line of the first byte the encoding cannot decode: the text
        reader decodes ahead in chunks, so its own count is not it."""
        decoder = codecs.getincrementaldecoder(self.encoding)()
        offset = 0
        with self.path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    return _line_of_offset(self.path, offset + max(exc.start, 0))
                offset += len(chunk)
        return None

    def _xlsx_rows(self, progress: Progress | None) -> Iterator[tuple[int, list[str]]]:
        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException

        # data_only: a formula's last computed value, never its text.
        try:
            workbook = load_workbook(self.path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError):
            # A ZIP archive without a workbook's parts in it.
            raise ImportFailed(f"{self.name} is not an XLSX workbook", []) from None
        try:
            if not workbook.worksheets:
                raise ImportFailed(f"{self.name}: the workbook has no sheet", [])
            sheet = workbook.worksheets[0]
            unsaved = self._unsaved_formulas(sheet)
            # The sheet's stated size is not trusted: a sheet formatted down
            # to row 1,048,576 claims that many rows, and openpyxl would pad
            # out to the claim with empty ones.
            sheet.reset_dimensions()
            for line, values in enumerate(sheet.iter_rows(values_only=True), 1):
                cells = [_cell_text(value) for value in values]
                for column in unsaved.get(line, ()):
                    if column <= len(cells) and not cells[column - 1]:
                        cells[column - 1] = UnsavedFormula()
                if any(cells):
                    yield line, cells
                if progress and line % PROGRESS_EVERY == 0:
                    progress("checking", line, 0)
        finally:
            workbook.close()

    def _unsaved_formulas(self, sheet: Any) -> dict[int, list[int]]:
        """Row -> columns of the sheet's formula cells that have no saved
        value. openpyxl's data_only reading gives those as empty, like an
        empty cell, so the sheet's XML is searched for them, once per file:
        one quick pass over it for a formula at all, a second parse only
        if there is one."""
        if self._unsaved is not None:
            return self._unsaved
        from xml.etree.ElementTree import iterparse

        from openpyxl.utils.cell import coordinate_to_tuple

        self._unsaved = {}
        # _get_source() opens the sheet's XML in the workbook's archive;
        # openpyxl has no public way to it.
        with sheet._get_source() as xml:
            tail = b""
            while chunk := xml.read(1 << 20):
                if FORMULA_TAG.search(tail + chunk):
                    break
                tail = chunk[-16:]
            else:
                return self._unsaved

        namespace = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
        with sheet._get_source() as xml:
            rows_parent = None
            # The same parser openpyxl reads the sheet with: expat fetches
            # no external entities and (2.4.1 on) stops entity expansion
            # bombs.
            events = iterparse(xml, events=("start", "end"))  # noqa: S314
            for event, element in events:
                if event == "start":
                    if element.tag == f"{namespace}sheetData":
                        rows_parent = element
                    continue
                if element.tag == f"{namespace}row" and rows_parent is not None:
                    # Rows read are dropped, or the tree would grow to the
                    # whole sheet.
                    rows_parent.clear()
                if element.tag != f"{namespace}c":
                    continue
                coordinate = element.get("r")
                has_formula = element.find(f"{namespace}f") is not None
                if coordinate and has_formula and not element.findtext(f"{namespace}v"):
                    row, column = coordinate_to_tuple(coordinate)
                    self._unsaved.setdefault(row, []).append(column)
        return self._unsaved


@dataclass
class Layout:
    """Where each column of a spec comes from in one file: a cell position, a
    constant, or nothing (the column's default)."""

    positions: list[int | None]
    constants: list[str | None]
    value_maps: list[dict[str, str] | None]
    width: int  # the header's number of columns
    # The cells of date and date-time columns, for learning the date order.
    date_positions: list[tuple[int, dict[str, str] | None]] = field(
        default_factory=list
    )
    # Each column of the spec with its position, constant and value map:
    # what parse_row walks for every row, zipped once.
    sources: list[tuple[Column, int | None, str | None, dict[str, str] | None]] = field(
        default_factory=list
    )

    def present_fields(self, spec: Spec) -> list[str]:
        """The fields the file gives a value for. A column a profile does
        not map takes its default in a new record and leaves a stored one
        as it is."""
        return [
            column.field
            for column, position, constant in zip(
                spec.columns, self.positions, self.constants, strict=True
            )
            if position is not None or constant
        ]

    def set_date_positions(self, spec: Spec) -> None:
        self.date_positions = [
            (position, value_map)
            for column, position, value_map in zip(
                spec.columns, self.positions, self.value_maps, strict=True
            )
            if position is not None and column.parse in DATE_PARSERS
        ]


def _normal(name: str) -> str:
    return " ".join(name.split()).lower()


# How many unknown header names an error lists.
SHOWN_HEADERS = 10


def _listed(names: list[str]) -> str:
    """Header names for a message: quoted where they hold control characters
    or are long, at most SHOWN_HEADERS of them."""
    shown_names = [
        name if name.isprintable() and len(name) <= SHOWN_CHARACTERS else shown(name)
        for name in names[:SHOWN_HEADERS]
    ]
    if len(names) > SHOWN_HEADERS:
        shown_names.append(f"and {len(names) - SHOWN_HEADERS} more")
    return ", ".join(shown_names)


def layout_for(
    spec: Spec, name: str, header: list[str], mapping: Mapping | None = None
) -> Layout:
    """Where each column of the spec sits in the file. Without a mapping the
    header holds the kind's columns (any order), the optional ones if it
    likes; with one, the mapped headers must be there and the rest are
    ignored. Missing, unknown
    or repeated headers are an error naming them."""
    names = [_normal(cell) for cell in header]
    while names and not names[-1]:
        names.pop()
    repeated = sorted({cell for cell in names if cell and names.count(cell) > 1})

    problems = []
    if mapping is None:
        # Optional columns may be left out: a new record takes their
        # defaults and a stored one keeps its values (``present_fields``).
        expected = spec.header
        required = [c.name for c in spec.columns if c.required]
        missing = [column for column in required if column not in names]
        unknown = [cell or "(empty)" for cell in names if cell not in expected]
        if missing:
            problems.append(f"missing columns: {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown columns: {_listed(unknown)}")
        wanted = {name: name for name in expected if name in names}
    else:
        wanted = {c: _normal(h) for c, h in mapping.columns.items()}
        missing = sorted(
            {mapping.columns[c] for c, h in wanted.items() if h not in names}
        )
        if missing:
            problems.append(f"missing columns: {', '.join(missing)}")
        repeated = [cell for cell in repeated if cell in wanted.values()]
    if repeated:
        problems.append(f"repeated columns: {_listed(repeated)}")
    if problems:
        described = (
            f"the {spec.kind} kind ({', '.join(spec.header)})"
            if mapping is None
            else "the profile's columns"
        )
        raise ImportFailed(
            f"{name}, line 1: the header does not match {described}",
            problems,
        )

    maps = mapping.value_maps if mapping else {}
    constants = mapping.constants if mapping else {}
    layout = Layout(
        positions=[
            names.index(wanted[c.name]) if c.name in wanted else None
            for c in spec.columns
        ],
        constants=[constants.get(c.name) for c in spec.columns],
        value_maps=[
            {_normal(k): v.strip() for k, v in maps[c.name].items()}
            if c.name in maps
            else None
            for c in spec.columns
        ],
        width=len(names),
    )
    layout.set_date_positions(spec)
    layout.sources = list(
        zip(
            spec.columns,
            layout.positions,
            layout.constants,
            layout.value_maps,
            strict=True,
        )
    )
    return layout


# --- Validating --------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    line: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        if self.column is None:
            return f"line {self.line}: {self.reason}"
        return f"line {self.line}, column {self.column}: {self.reason}"


def _cell(cells: list[str], position: int, value_map: dict[str, str] | None) -> str:
    value = cells[position] if position < len(cells) else ""
    if value_map is not None and value:
        value = value_map.get(_normal(value), value)
    return value


UNSAVED_FORMULA = (
    "is a formula with no saved value (open and save the file in a spreadsheet program)"
)


def parse_row(
    spec: Spec, layout: Layout, line: int, cells: list[str], lookups: Lookups
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The model values of one row, or None and what is wrong with it.
    Raises DateOrderNeeded at a date that reads either way when the import
    does not know the order yet."""
    problems = []
    width = layout.width
    if len(cells) > width and any(cells[width:]):
        problems.append(
            Problem(line, None, f"has {len(cells)} fields, the header {width}")
        )

    missing_values = lookups.options.missing_values
    values: dict[str, Any] = {}
    # Runs for every row of every file: the cell is read inline (as _cell
    # does) and the lower-case copy made only when missing words are set.
    count = len(cells)
    for column, position, constant, value_map in layout.sources:
        if position is None:
            value = constant or ""
        elif position < count:
            value = cells[position]
            if value_map is not None and value:
                value = value_map.get(_normal(value), value)
        else:
            value = ""
        if isinstance(value, UnsavedFormula):
            problems.append(Problem(line, column.name, UNSAVED_FORMULA))
            continue
        if "\x00" in value:
            # PostgreSQL's text cannot hold NUL; no database keeps it here.
            problems.append(Problem(line, column.name, "contains a NUL character"))
            continue
        if not value or (missing_values and value.lower() in missing_values):
            if column.required:
                problems.append(Problem(line, column.name, "is required"))
            values[column.field] = column.default
            continue
        try:
            values[column.field] = column.parse(value, lookups)
        except BadValue as exc:
            problems.append(Problem(line, column.name, str(exc)))

    if problems:
        return None, problems
    for check in spec.checks:
        broken = check(values, lookups)
        if broken:
            problems.append(Problem(line, *broken))
    return (None if problems else values), problems


def infer_date_order(source: Source, layout: Layout) -> str:
    """The order of the file's day-month dates, as the file proves it: a
    first number above 12 is a day, a second above 12 is one too. Raises
    ImportFailed when the file proves both orders, or neither. One more
    pass over the file."""
    evidence: dict[str, tuple[int, str]] = {}
    example = None
    with closing(source.rows()) as rows:
        next(rows, None)
        for line, cells in rows:
            for position, value_map in layout.date_positions:
                value = _cell(cells, position, value_map).partition(" ")[0]
                match = NUMERIC_DATE.fullmatch(value)
                if not match:
                    continue
                first, second = int(match.group(1)), int(match.group(3))
                example = example or (line, value)
                if first > 12 and second <= 12:
                    evidence.setdefault("dmy", (line, value))
                elif second > 12 and first <= 12:
                    evidence.setdefault("mdy", (line, value))
            if len(evidence) == 2:
                break

    name = source.name
    if len(evidence) == 2:
        (dmy_line, dmy), (mdy_line, mdy) = evidence["dmy"], evidence["mdy"]
        raise ImportFailed(
            f"{name}: dates are day first on line {dmy_line} ({dmy!r}) and "
            f"month first on line {mdy_line} ({mdy!r}); fix the file",
            [],
        )
    if not evidence:
        line, value = example or (0, "")
        raise ImportFailed(
            f"{name}: the dates are ambiguous: {value!r} (line {line}) and the "
            "others read as day first or month first alike. Say which with "
            "--date-order dmy or mdy, or set the date order of the profile.",
            [],
        )
    (order,) = evidence
    logger.info("Dates of %s read %s, as line %s shows", name, order, evidence[order])
    return order


@dataclass
class Validation:
    layout: Layout
    good: int = 0
    bad_lines: set[int] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    rejects_path: Path | None = None
    # The first good rows, for the preview.
    first_rows: list[dict[str, Any]] = field(default_factory=list)


class RowSink(Protocol):
    """Where pass one hands each good row, so that no row is parsed twice:
    a Spool here, or a PostgreSQL staging table (``import_staging``)."""

    def add(self, values: dict[str, Any]) -> None: ...

    def reset(self) -> None:
        """Forget the rows added so far: pass one starts again."""


class RejectsFile:
    """The bad rows of a file, as they were, with the line and the reason;
    created on the first bad row only."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.header = header
        self.handle = None
        self.writer = None

    def add(self, line: int, cells: list[str], problems: list[Problem]) -> None:
        if self.writer is None:
            self.handle = self.path.open("w", encoding="utf-8", newline="")
            self.writer = csv.writer(self.handle)
            self.writer.writerow([*self.header, "line", "reason"])
        padded = cells + [""] * (len(self.header) - len(cells))
        reason = "; ".join(
            f"{p.column}: {p.reason}" if p.column else p.reason for p in problems
        )
        self.writer.writerow([*padded, line, reason])

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def validate(
    spec: Spec,
    source: Source,
    lookups: Lookups,
    rejects_path: Path | None = None,
    mapping: Mapping | None = None,
    progress: Progress | None = None,
    keep: RowSink | None = None,
) -> Validation:
    """Pass one: every bad row of the file, without writing to the database.
    With ``rejects_path``, bad rows are copied there with their reasons;
    with ``keep``, good rows are handed to it as they are found.

    Learns the date order from the file (``infer_date_order``) the first
    time a date reads either way and the import does not say which.
    """
    with closing(source.rows()) as rows:
        first = next(rows, None)
        if first is None:
            raise ImportFailed(f"{source.name}: the file is empty", [])
        header_line, header = first
        if header_line != 1:
            raise ImportFailed(f"{source.name}: line 1 must be the header", [])
    layout = layout_for(spec, source.name, header, mapping)

    try:
        return _validate_rows(
            spec, source, layout, lookups, rejects_path, progress, keep
        )
    except DateOrderNeeded:
        order = infer_date_order(source, layout)
        lookups.options = replace(lookups.options, date_order=order)
        if keep is not None:
            keep.reset()
        return _validate_rows(
            spec, source, layout, lookups, rejects_path, progress, keep
        )


def _validate_rows(
    spec: Spec,
    source: Source,
    layout: Layout,
    lookups: Lookups,
    rejects_path: Path | None,
    progress: Progress | None,
    keep: RowSink | None,
) -> Validation:
    seen: dict[Hashable, int] = {}
    key_names = ", ".join(spec.key_columns)
    result = Validation(layout=layout)
    first_rows = result.first_rows
    # Looked up once: this loop runs for every row of the file.
    compact_key, key_of = spec.compact_key, spec.key_of
    add = keep.add if keep is not None else None

    with closing(source.rows(progress)) as rows:
        _, header = next(rows)
        rejects = RejectsFile(rejects_path, header) if rejects_path else None
        try:
            for line, cells in rows:
                values, problems = parse_row(spec, layout, line, cells, lookups)
                if values is not None:
                    key = compact_key(key_of(values))
                    earlier = seen.get(key)
                    if earlier is None:
                        seen[key] = line
                        result.good += 1
                        if add is not None:
                            add(values)
                        if len(first_rows) < PREVIEW_ROWS:
                            first_rows.append(values)
                        continue
                    reason = f"same {key_names} as line {earlier}"
                    problems = [Problem(line, spec.key_columns[0], reason)]

                result.bad_lines.add(line)
                result.problems.extend(problems)
                if rejects is not None:
                    rejects.add(line, cells, problems)
                    result.rejects_path = rejects.path
        finally:
            if rejects is not None:
                rejects.close()

    return result


# --- Writing -----------------------------------------------------------------


def _stored(
    spec: Spec, keys: list[tuple], fields: list[str]
) -> dict[tuple, tuple[int, dict[str, Any]]]:
    """(pk, stored values) under each natural key of a batch. One query.

    A composite key is matched with one IN list per field and the exact keys
    are picked out here: "(a AND b) OR (c AND d) ..." costs far more to
    build in the ORM and SQLite refuses it past 1,000 terms.
    """
    # TODO: match composite keys exactly in SQL (row values) if imports of
    # files in random order get slow; sorted files fetch almost nothing extra.
    filters = {
        f"{name}__in": sorted({key[i] for key in keys})
        for i, name in enumerate(spec.key)
    }
    wanted = set(keys)
    stored = {}
    for pk, *values in spec.model._default_manager.filter(**filters).values_list(
        "pk", *fields
    ):
        row = dict(zip(fields, values, strict=True))
        key = spec.key_of(row)
        if key in wanted:
            stored[key] = (pk, row)
    return stored


def _sync_records(
    spec: Spec,
    rows: list[dict[str, Any]],
    batch: ImportBatch | None,
    write: bool,
    fields: list[str],
) -> Counts:
    """Create or update one batch of rows of a model kind: three queries.
    Only ``fields`` (those the file gives) are compared and updated."""
    counts = Counts()
    stored = _stored(spec, [spec.key_of(values) for values in rows], fields)
    has_batch = any(f.name == "batch" for f in spec.model._meta.fields)
    has_updated_at = any(f.name == "updated_at" for f in spec.model._meta.fields)
    now = timezone.now()

    to_create, to_update = [], []
    for values in rows:
        found = stored.get(spec.key_of(values))
        given = {name: values[name] for name in fields}
        if found is None:
            obj = spec.model(**values)
            to_create.append(obj)
            counts.new += 1
        elif found[1] != given:
            pk, before = found
            # A record that moves to another customer changes both scores.
            if "customer_id" in before:
                counts.customer_ids.add(before["customer_id"])
            obj = spec.model(pk=pk, **given)
            to_update.append(obj)
            counts.updated += 1
        else:
            counts.unchanged += 1
            continue
        # A record keeps the batch that created it, so undoing that batch
        # removes exactly what it added; updates do not move it.
        if has_batch and found is None:
            obj.batch = batch
        if has_updated_at:
            obj.updated_at = now

    if write:
        manager = spec.model._default_manager
        manager.bulk_create(to_create, batch_size=BATCH_SIZE)
        if to_update:
            extra = ["updated_at"] * has_updated_at
            manager.bulk_update(to_update, [*fields, *extra], batch_size=BATCH_SIZE)

    for obj in to_create + to_update:
        customer_id = obj.pk if spec.model is Customer else obj.customer_id
        if customer_id is not None:
            counts.customer_ids.add(customer_id)
    return counts


def _sync_users(
    spec: Spec,
    rows: list[dict[str, Any]],
    lookups: Lookups,
    write: bool,
    fields: list[str],
) -> Counts:
    """Create or update one batch of users and their role. Six queries.
    Names the file does not give are left as they are."""
    counts = Counts()
    role_ids = list(lookups.roles.values())
    memberships = User.groups.through
    existing_ids = [
        lookups.users[v["email"]] for v in rows if v["email"] in lookups.users
    ]
    stored = {u.pk: u for u in User.objects.filter(pk__in=existing_ids)}
    roles: dict[int, set[int]] = {pk: set() for pk in stored}
    for user_id, group_id in memberships.objects.filter(
        user_id__in=existing_ids, group_id__in=role_ids
    ).values_list("user_id", "group_id"):
        roles[user_id].add(group_id)

    to_create, to_update, regrouped = [], [], {}
    for values in rows:
        pk = lookups.users.get(values["email"])
        obj = stored.get(pk) if pk is not None else None
        if obj is None:
            obj = User(
                username=values["email"],
                email=values["email"],
                first_name=values["first_name"],
                last_name=values["last_name"],
            )
            # No password until an admin sets one.
            obj.set_unusable_password()
            to_create.append((obj, values["role"]))
            counts.new += 1
            continue

        names = [name for name in ("first_name", "last_name") if name in fields]
        names_differ = any(getattr(obj, name) != values[name] for name in names)
        role_differs = roles[obj.pk] != {values["role"]}
        if not (names_differ or role_differs):
            counts.unchanged += 1
            continue
        counts.updated += 1
        if names_differ:
            for name in names:
                setattr(obj, name, values[name])
            to_update.append(obj)
        if role_differs:
            regrouped[obj.pk] = values["role"]

    if write:
        User.objects.bulk_create([obj for obj, _ in to_create])
        if to_update:
            User.objects.bulk_update(to_update, ["first_name", "last_name"])
        # Other groups than the three roles are left as they are.
        memberships.objects.filter(
            user_id__in=list(regrouped), group_id__in=role_ids
        ).delete()
        regrouped.update({obj.pk: group_id for obj, group_id in to_create})
        memberships.objects.bulk_create(
            [memberships(user_id=u, group_id=g) for u, g in regrouped.items()]
        )
    return counts


class Spool:
    """The good rows of pass one, kept for pass two in a temporary file a
    batch at a time: each row is parsed once, and memory holds one batch
    whatever the size of the file."""

    def __init__(self, fields: list[str]) -> None:
        self.fields = fields
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.pending: list[tuple] = []

    def add(self, values: dict[str, Any]) -> None:
        self.pending.append(tuple([values[name] for name in self.fields]))
        if len(self.pending) >= BATCH_SIZE:
            self._dump()

    def _dump(self) -> None:
        pickle.dump(self.pending, self.file, pickle.HIGHEST_PROTOCOL)
        self.pending = []

    def reset(self) -> None:
        self.pending = []
        self.file.seek(0)
        self.file.truncate()

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        """The rows added, as parsed, BATCH_SIZE at a time."""
        if self.pending:
            self._dump()
        self.file.seek(0)
        while True:
            try:
                # Only this process wrote the file, a moment ago.
                rows = pickle.load(self.file)  # noqa: S301
            except EOFError:
                return
            yield [dict(zip(self.fields, row, strict=True)) for row in rows]

    def close(self) -> None:
        self.file.close()


@contextmanager
def _row_sink(spec: Spec) -> Iterator[import_staging.Staging | Spool]:
    """Where pass one keeps the good rows of a kind: a staging table when
    ``import_staging`` takes the kind (PostgreSQL; call inside the import's
    transaction), else a spool."""
    if import_staging.supports(spec.model, spec.key, spec.fields):
        yield import_staging.Staging(spec.model, spec.fields, spec.key)
        return
    spool = Spool(spec.fields)
    try:
        yield spool
    finally:
        spool.close()


def _write(
    spec: Spec,
    sink: import_staging.Staging | Spool,
    batch: ImportBatch | None,
    lookups: Lookups,
    fields: list[str],
    total: int,
    progress: Progress | None,
) -> Counts:
    """Pass two: compare the kept rows with what is stored and, unless
    ``batch`` is None (a dry run), write them. Only ``fields`` (those the
    file gives) are compared and updated."""
    write = batch is not None
    if isinstance(sink, import_staging.Staging):
        if progress:
            progress("writing", 0, total)
        counts = sink.write(
            present=fields,
            batch_id=batch.pk if batch else None,
            write=write,
            now=timezone.now(),
        )
        if progress:
            progress("writing", total, total)
        return counts

    counts = Counts()
    done = 0
    for rows in sink.batches():
        if spec.kind == "users":
            more = _sync_users(spec, rows, lookups, write, fields)
        else:
            more = _sync_records(spec, rows, batch, write, fields)
        counts.new += more.new
        counts.updated += more.updated
        counts.unchanged += more.unchanged
        counts.customer_ids |= more.customer_ids
        done += len(rows)
        if progress:
            progress("writing", done, total)
    return counts


# --- The import --------------------------------------------------------------


@dataclass
class ImportReport:
    kind: str
    file_name: str
    dry_run: bool
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    rejects_path: Path | None = None
    batch_id: int | None = None
    rescored: int = 0
    profile: str = ""
    read_as: str = ""  # how the file was read: encoding, delimiter, dates
    # The first rows as they would land: canonical column -> text.
    preview: list[dict[str, str]] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return (
            f"{self.new} new, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.skipped} skipped"
        )


def rejects_path_for(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejects.csv")


PREVIEW_ROWS = 20


# How the preview names what a row refers to: field -> (model, attribute).
PREVIEW_NAMES: dict[str, tuple[type[models.Model], str]] = {
    "customer_id": (Customer, "name"),
    "metric_id": (Metric, "key"),
    "owner_id": (User, "email"),
    "csm_id": (User, "email"),
    "role": (Group, "name"),
}


def _preview(spec: Spec, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The first rows as a person reads them: customers by name, metrics by
    key, users by email, never by id. One query per kind of reference."""
    rows = rows[:PREVIEW_ROWS]
    names: dict[str, dict[Any, str]] = {}
    for column in spec.columns:
        if column.field in PREVIEW_NAMES and column.field not in names:
            model, attribute = PREVIEW_NAMES[column.field]
            ids = {values[column.field] for values in rows} - {None}
            names[column.field] = dict(
                model._default_manager.filter(pk__in=ids).values_list("pk", attribute)
            )
    preview = []
    for values in rows:
        shown_row = {}
        for column in spec.columns:
            value = values[column.field]
            if column.field in names:
                value = names[column.field].get(value, value)
            shown_row[column.name] = "" if value is None else str(value)
        preview.append(shown_row)
    return preview


def import_file(
    *,
    kind: str,
    path: Path,
    dry_run: bool = False,
    skip_bad_rows: bool = False,
    user_id: int | None = None,
    progress: Progress | None = None,
    mapping: Mapping | None = None,
    options: Options | None = None,
    profile: str = "",
    file_name: str = "",
) -> ImportReport:
    """Import one file of a canonical kind and return what happened.

    ``mapping`` (an import profile) reads another tool's columns as the
    kind's; ``options`` (encoding, date order, numbers...) override the
    mapping's own. ``file_name`` is the name to report and record when
    ``path`` is a temporary copy (an upload).

    Raises ImportFailed, having written nothing, when the header is wrong or
    a row is bad and ``skip_bad_rows`` is off. Otherwise one transaction
    writes the good rows, records an ImportBatch and asks for one re-score of
    the customers whose inputs changed. A dry run writes and enqueues nothing.

    Costs a few queries to load what rows refer to, then on PostgreSQL, for
    the kinds ``import_staging`` takes, one COPY per COPY_ROWS good rows and
    a handful of statements; otherwise about three queries per BATCH_SIZE
    rows. Plus the re-score.
    """
    spec = SPECS[kind]
    if mapping is not None and options is not None:
        options = mapping.options.merged(**vars(options))
    elif mapping is not None:
        options = mapping.options
    file_name = file_name or path.name
    source = Source.open(path, options.encoding if options else "", file_name)
    lookups = Lookups(spec.needs, options, spreadsheet=source.spreadsheet)
    writes_rejects = skip_bad_rows and not dry_run

    # The transaction starts before pass one, which may hand the good rows
    # to a staging table in it: a failed import rolls that back too.
    with transaction.atomic(), _row_sink(spec) as sink:
        validation = validate(
            spec,
            source,
            lookups,
            rejects_path_for(path) if writes_rejects else None,
            mapping,
            progress,
            keep=sink,
        )
        report = _report(
            spec, source, lookups, validation, skip_bad_rows, dry_run, file_name
        )
        report.profile = profile

        batch = None
        if not dry_run:
            batch = ImportBatch.objects.create(
                kind=kind, file_name=file_name[:255], created_by_id=user_id
            )
            report.batch_id = batch.pk
        fields = validation.layout.present_fields(spec)
        counts = _write(spec, sink, batch, lookups, fields, validation.good, progress)

        report.new = counts.new
        report.updated = counts.updated
        report.unchanged = counts.unchanged
        if batch is not None:
            batch.rows_new = report.new
            batch.rows_updated = report.updated
            batch.rows_unchanged = report.unchanged
            batch.rows_skipped = report.skipped
            batch.errors = report.errors
            batch.save(
                update_fields=[
                    "rows_new",
                    "rows_updated",
                    "rows_unchanged",
                    "rows_skipped",
                    "errors",
                ]
            )
            if counts.customer_ids:
                # One job for every customer the import touched; it runs after
                # the commit, so it sees the new rows.
                jobs.request_rescore(sorted(counts.customer_ids))
                report.rescored = len(counts.customer_ids)

    logger.info(
        "Import of %s from %s%s: %s",
        f"{kind} (profile {profile})" if profile else kind,
        file_name,
        " (dry run)" if dry_run else "",
        report.summary,
    )
    return report


def _report(
    spec: Spec,
    source: Source,
    lookups: Lookups,
    validation: Validation,
    skip_bad_rows: bool,
    dry_run: bool,
    file_name: str,
) -> ImportReport:
    """The report of pass one; ImportFailed when a row is bad and bad rows
    are not to be skipped. Names the first rows (the preview): one query
    per kind of reference."""
    errors = [str(problem) for problem in validation.problems]
    if errors and not skip_bad_rows:
        bad = len(validation.bad_lines)
        raise ImportFailed(
            f"{file_name}: {bad} bad row{'' if bad == 1 else 's'}; "
            "nothing was imported. Fix them, or rerun with --skip-bad-rows "
            "to import the good rows.",
            errors,
        )

    read_as = source.description
    if lookups.options.date_order:
        read_as += f", dates {DATE_ORDERS[lookups.options.date_order]}"
    return ImportReport(
        kind=spec.kind,
        file_name=file_name,
        dry_run=dry_run,
        skipped=len(validation.bad_lines),
        errors=errors,
        rejects_path=validation.rejects_path,
        read_as=read_as,
        preview=_preview(spec, validation.first_rows) if validation.good else [],
    )


# --- Undoing an import ---------------------------------------------------------


class UndoRefused(Exception):
    """The batch cannot be undone; the message says why."""


@dataclass
class UndoReport:
    deleted: dict[str, int]
    rescored: int

    @property
    def summary(self) -> str:
        parts = [f"{count} {name}" for name, count in self.deleted.items() if count]
        return ", ".join(parts) or "nothing"


def undo_batch(*, batch_id: int) -> UndoReport:
    """Delete the records an import batch created, then the batch itself,
    and re-score the customers whose inputs that changed (one job).

    Records the batch only updated keep their new values: the importer
    keeps no earlier values to go back to. Customers and users have no
    batch, and deleting customers would delete their whole history, so
    batches of those kinds are refused. One query per record model.
    """
    batch = ImportBatch.objects.get(pk=batch_id)
    spec = SPECS.get(batch.kind)
    if spec is None or not any(f.name == "batch" for f in spec.model._meta.fields):
        raise UndoRefused(
            f"an import of {batch.kind} cannot be undone: it leaves no mark on "
            "the rows it created; edit or delete them in the admin"
        )

    deleted: dict[str, int] = {}
    customer_ids: set[int] = set()
    with transaction.atomic():
        # A batch's records are all of its kind's model.
        records = spec.model._default_manager.filter(batch=batch)
        customer_ids.update(records.values_list("customer_id", flat=True).distinct())
        count, _ = records.delete()
        deleted[spec.model._meta.verbose_name_plural] = count
        ImportBatch.objects.filter(pk=batch.pk).delete()
        if customer_ids:
            jobs.request_rescore(sorted(customer_ids))

    logger.info("Undid import batch %s (%s): deleted %s", batch_id, batch, deleted)
    return UndoReport(deleted=deleted, rescored=len(customer_ids))
