"""Load the public RavenStack SaaS tables into the workbench.

RavenStack is a synthetic B2B SaaS company published as five linked CSV files
(accounts, subscriptions, feature usage, support tickets, churn events; see
``shared/data/SOURCES.md``). ``load_ravenstack`` parses all five, then writes
customers, opportunities, tickets and monthly adoption readings in one
transaction: a bad value anywhere stops the load before anything is written.
Rows are matched by their RavenStack ids, so loading the same files again
changes nothing; the loader adds and updates rows, it never deletes any.

How the files map onto the workbench, and why:

- **Accounts -> customers.** ``external_id`` = ``account_id``, ``name`` =
  ``account_name``, ``customer_since`` = ``signup_date``. ``segment`` =
  ``plan_tier`` (Basic, Pro, Enterprise), not ``industry``: the segment picks
  the score model, and CS teams tune models and coverage by commercial tier
  (tech-touch Basic, high-touch Enterprise) far more often than by industry.
  The account's tier is taken as the file gives it, although it matches the
  tier of the account's first paid subscription for only a third of the
  accounts (the generator draws them independently). Industry, country,
  referral source and seats have no field and are left out.
- **ARR** = the sum of ``arr_amount`` over the account's paid subscriptions
  that run on a reference day: started on or before it, and with no
  ``end_date`` or one after it. The reference day is the last day the files
  cover (2024-12-31), or ``churned_on`` for a churned customer, so a churned
  customer keeps the ARR it had when it left (the revenue lost). The
  generator rarely ends a subscription when a later one starts (4,514 of
  5,000 have no end date), so accounts run several at once and their sums are
  large (median about 200,000); that is what the file says.
- **Churn.** Accounts with ``churn_flag`` TRUE get ``churned_on`` = the date
  of their last churn event. 35 of the 110 flagged accounts have no churn
  event at all; the files give no date for them, so ``churned_on`` = the last
  day the files cover (2024-12-31): they stop being scored there and fall in
  no backtest horizon, instead of churning on an invented earlier date.
  Accounts flagged FALSE stay customers (``churned_on`` empty) even when
  they have churn events (277 do): they churned and came back, and a
  customer holds a single ``churned_on``, so a churn followed by a return is
  not a churn.
  ``is_reactivation`` is not used: it is TRUE on events of flagged and
  unflagged accounts alike.
- **Subscriptions -> opportunities**, trials left out: all 778 trials have an
  amount of 0 and are not a purchase; counting them would make a free trial
  a product owned or a renewal won. Per account, the paid subscriptions in
  order of ``start_date`` (then ``subscription_id``, for ties): the first is
  kind ``new``; a later one is ``upsell`` when its ``upgrade_flag`` is set or
  its tier ranks above the tier of the paid subscription just before it
  (Basic < Pro < Enterprise), else ``renewal`` (the same tier, or a
  downgrade: still the customer buying again, for less). ``external_id`` =
  ``subscription_id``, ``product`` = ``plan_tier``, stage ``won``,
  ``created_on`` = ``closed_on`` = ``start_date``, ``amount`` =
  ``arr_amount``. So "products owned" counts the distinct tiers bought.
- **Feature usage -> monthly readings**, observed on each month end, for
  every account and month with at least one usage row (usage links to its
  account through ``subscription_id``):
  ``login_days_30d`` = distinct usage days of the account in the month,
  capped at 30 (a calendar month stands in for "the last 30 days");
  ``feature_adoption_ratio`` = distinct features the account used in the
  month / distinct features in the whole file (40). A month without usage
  rows gets no reading rather than a zero: at about two rows per account and
  month the file is a sample, not a complete log, and a stale reading simply
  drops out of the score after 90 days. ``active_user_ratio`` is not loaded:
  the file has no user ids, so there is nothing to divide seats by. Usage
  rows are not stored one by one; 21 ``usage_id`` values occur twice with
  different contents, and both rows count.
- **Support tickets -> tickets**: ``external_id`` = ``ticket_id``,
  ``opened_at`` = ``submitted_at`` (a date: midnight UTC), ``closed_at`` as
  given, read as UTC, ``priority``, ``escalated`` = ``escalation_flag``,
  ``satisfaction`` = ``satisfaction_score`` (blank: none).
- **Dates** are read with each file's own format, never guessed: accounts and
  churn events day-first ``16/10/2024`` with ``TRUE``/``FALSE``, the others
  ISO ``2024-10-16`` with ``True``/``False``. ``1/2/2024`` in the accounts
  file is 1 February. A value that does not fit raises ``RavenStackError``
  naming the file, line, column and value, and nothing is written.
- **What the files say is kept even where the generator is careless**: about
  half the usage rows and tickets predate the account's signup, and flagged
  accounts have activity after their churn. Scoring only looks at a customer
  while it is one, so such rows matter only inside the usual windows.

After loading, ``score_month_ends`` backfills snapshots at every month end
from 2023-01-31 to 2024-12-31, and ``measure_band_churn`` reports the band mix
and the churn rate per band that followed.
"""

from __future__ import annotations

import calendar
import csv
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.db import models, transaction

from health import jobs
from health.models import (
    Customer,
    JobRun,
    Metric,
    MetricReading,
    Opportunity,
    ScoreModel,
    ScoreSnapshot,
    Ticket,
)
from health.scoring import BANDS, UNSCORED

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

ACCOUNTS = "ravenstack_accounts.csv"
SUBSCRIPTIONS = "ravenstack_subscriptions.csv"
FEATURE_USAGE = "ravenstack_feature_usage.csv"
SUPPORT_TICKETS = "ravenstack_support_tickets.csv"
CHURN_EVENTS = "ravenstack_churn_events.csv"

# The last day the files cover (usage runs to 2024-12-31) and the month ends
# the backfill scores.
DATA_END = date(2024, 12, 31)
FIRST_MONTH_END = date(2023, 1, 31)

TIER_RANK = {"Basic": 1, "Pro": 2, "Enterprise": 3}
LOGIN_DAYS = "login_days_30d"
FEATURE_ADOPTION = "feature_adoption_ratio"


class RavenStackError(ValueError):
    """A RavenStack file that the loader cannot read. For a bad value,
    ``file``, ``line`` and ``column`` say where it is."""

    def __init__(
        self,
        message: str,
        *,
        file: str = "",
        line: int | None = None,
        column: str = "",
        value: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file, self.line, self.column, self.value = file, line, column, value

    @classmethod
    def bad_value(
        cls, file: str, line: int, column: str, value: str, expected: str
    ) -> RavenStackError:
        return cls(
            f"{file}, line {line}, column {column}: {value!r} is not {expected}",
            file=file,
            line=line,
            column=column,
            value=value,
        )


# --- Reading the files -------------------------------------------------------


def _day_first(raw: str) -> date:
    return datetime.strptime(raw, "%d/%m/%Y").date()  # noqa: DTZ007 (a date)


def _iso_date(raw: str) -> date:
    return datetime.strptime(raw, "%Y-%m-%d").date()  # noqa: DTZ007 (a date)


def _iso_datetime_utc(raw: str) -> datetime:
    return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def _sheet_bool(raw: str) -> bool:
    return {"TRUE": True, "FALSE": False}[raw]


def _python_bool(raw: str) -> bool:
    return {"True": True, "False": False}[raw]


def _amount(raw: str) -> Decimal:
    value = Decimal(raw)
    if not value.is_finite():
        raise ValueError(raw)
    return value


def _id(raw: str) -> str:
    if not raw.strip():
        raise ValueError("empty")
    return raw.strip()


# (parser, what the error message says a value should be)
DAY_FIRST = (_day_first, "a day-first date D/M/YYYY")
ISO_DATE = (_iso_date, "an ISO date YYYY-MM-DD")
ISO_DATETIME = (_iso_datetime_utc, "an ISO date-time YYYY-MM-DD HH:MM:SS")
SHEET_BOOL = (_sheet_bool, "TRUE or FALSE")
PYTHON_BOOL = (_python_bool, "True or False")
AMOUNT = (_amount, "a number")
ID = (_id, "a non-empty id")
TEXT = (str.strip, "text")


@dataclass(frozen=True)
class _Row:
    file: str
    line: int
    values: dict[str, str]

    def get(self, column: str, kind: tuple[Callable[[str], Any], str]) -> Any:
        parse, expected = kind
        raw = self.values[column]
        try:
            return parse(raw)
        except (ValueError, KeyError, InvalidOperation):
            raise RavenStackError.bad_value(
                self.file, self.line, column, raw, expected
            ) from None

    def optional(self, column: str, kind: tuple[Callable[[str], Any], str]) -> Any:
        return self.get(column, kind) if self.values[column].strip() else None

    def error(self, column: str, expected: str) -> RavenStackError:
        return RavenStackError.bad_value(
            self.file, self.line, column, self.values[column], expected
        )


def _rows(folder: Path, name: str, columns: Iterable[str]) -> Iterator[_Row]:
    """The data rows of one file, with their line numbers (the header is
    line 1). Raises RavenStackError when a needed column is absent."""
    path = folder / name
    if not path.is_file():
        raise RavenStackError(f"{path} is missing", file=name)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise RavenStackError(
                f"{name}, line 1: the header lacks {', '.join(missing)}",
                file=name,
                line=1,
            )
        try:
            for values in reader:
                if None in values or None in values.values():
                    raise RavenStackError(
                        f"{name}, line {reader.line_num}: {len(header)} columns "
                        "expected, as in the header",
                        file=name,
                        line=reader.line_num,
                    )
                yield _Row(name, reader.line_num, values)
        except UnicodeDecodeError as exc:
            raise RavenStackError(
                f"{name}, after line {reader.line_num}: not UTF-8 text ({exc.reason})",
                file=name,
                line=reader.line_num,
            ) from None


@dataclass
class Parsed:
    """Everything the five files say that the workbench keeps, by RavenStack
    id; plain values, no database."""

    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    opportunities: dict[str, dict[str, Any]] = field(default_factory=dict)
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (account_id, metric key, month end) -> value
    readings: dict[tuple[str, str, date], float] = field(default_factory=dict)
    usage_rows: int = 0
    trials_skipped: int = 0
    churned_without_event: list[str] = field(default_factory=list)


def parse_folder(folder: Path) -> Parsed:
    """Read and check the five files; raise RavenStackError at the first bad
    value. No database access."""
    folder = Path(folder)
    parsed = Parsed()

    accounts = _parse_accounts(folder)
    last_churn = _parse_churn_events(folder, accounts)
    subscriptions = _parse_subscriptions(folder, accounts)

    for account_id, account in accounts.items():
        churned_on = None
        if account["churn_flag"]:
            churned_on = last_churn.get(account_id)
            if churned_on is None:
                churned_on = DATA_END
                parsed.churned_without_event.append(account_id)
        reference = churned_on or DATA_END
        arr = sum(
            (
                s["arr_amount"]
                for s in subscriptions[account_id]
                if not s["is_trial"]
                and s["start_date"] <= reference
                and (s["end_date"] is None or s["end_date"] > reference)
            ),
            Decimal(0),
        )
        parsed.customers[account_id] = {
            "name": account["name"],
            "segment": account["plan_tier"],
            "arr": arr,
            "customer_since": account["signup_date"],
            "churned_on": churned_on,
        }

    for account_id, subs in subscriptions.items():
        paid = sorted(
            (s for s in subs if not s["is_trial"]),
            key=lambda s: (s["start_date"], s["id"]),
        )
        parsed.trials_skipped += len(subs) - len(paid)
        previous = None
        for sub in paid:
            if previous is None:
                kind = Opportunity.Kind.NEW
            elif sub["upgrade_flag"] or (
                TIER_RANK[sub["plan_tier"]] > TIER_RANK[previous["plan_tier"]]
            ):
                kind = Opportunity.Kind.UPSELL
            else:
                kind = Opportunity.Kind.RENEWAL
            parsed.opportunities[sub["id"]] = {
                "customer": account_id,
                "product": sub["plan_tier"],
                "kind": kind,
                "stage": Opportunity.Stage.WON,
                "amount": sub["arr_amount"],
                "created_on": sub["start_date"],
                "closed_on": sub["start_date"],
            }
            previous = sub

    account_of = {
        s["id"]: account_id for account_id, subs in subscriptions.items() for s in subs
    }
    parsed.readings, parsed.usage_rows = _parse_usage(folder, account_of)
    parsed.tickets = _parse_tickets(folder, accounts)
    return parsed


def _parse_accounts(folder: Path) -> dict[str, dict[str, Any]]:
    columns = ["account_id", "account_name", "signup_date", "plan_tier", "churn_flag"]
    accounts: dict[str, dict[str, Any]] = {}
    for row in _rows(folder, ACCOUNTS, columns):
        account_id = row.get("account_id", ID)
        if account_id in accounts:
            raise row.error("account_id", "a unique account_id")
        tier = row.get("plan_tier", TEXT)
        if tier not in TIER_RANK:
            raise row.error("plan_tier", "one of Basic, Pro, Enterprise")
        accounts[account_id] = {
            "name": row.get("account_name", ID),
            "signup_date": row.get("signup_date", DAY_FIRST),
            "plan_tier": tier,
            "churn_flag": row.get("churn_flag", SHEET_BOOL),
        }
    return accounts


def _account(row: _Row, accounts: dict[str, Any]) -> str:
    account_id = row.get("account_id", ID)
    if account_id not in accounts:
        raise row.error("account_id", f"an account_id of {ACCOUNTS}")
    return account_id


def _parse_churn_events(folder: Path, accounts: dict[str, Any]) -> dict[str, date]:
    """The date of each account's last churn event."""
    last: dict[str, date] = {}
    columns = ["churn_event_id", "account_id", "churn_date", "is_reactivation"]
    for row in _rows(folder, CHURN_EVENTS, columns):
        row.get("churn_event_id", ID)
        account_id = _account(row, accounts)
        churn_date = row.get("churn_date", DAY_FIRST)
        # Read so that a malformed flag is reported, though it is not used.
        row.get("is_reactivation", SHEET_BOOL)
        if account_id not in last or churn_date > last[account_id]:
            last[account_id] = churn_date
    return last


def _parse_subscriptions(
    folder: Path, accounts: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    columns = [
        "subscription_id", "account_id", "start_date", "end_date", "plan_tier",
        "arr_amount", "is_trial", "upgrade_flag",
    ]  # fmt: skip
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for row in _rows(folder, SUBSCRIPTIONS, columns):
        sub_id = row.get("subscription_id", ID)
        if sub_id in seen:
            raise row.error("subscription_id", "a unique subscription_id")
        seen.add(sub_id)
        tier = row.get("plan_tier", TEXT)
        if tier not in TIER_RANK:
            raise row.error("plan_tier", "one of Basic, Pro, Enterprise")
        by_account[_account(row, accounts)].append(
            {
                "id": sub_id,
                "start_date": row.get("start_date", ISO_DATE),
                "end_date": row.optional("end_date", ISO_DATE),
                "plan_tier": tier,
                "arr_amount": row.get("arr_amount", AMOUNT),
                "is_trial": row.get("is_trial", PYTHON_BOOL),
                "upgrade_flag": row.get("upgrade_flag", PYTHON_BOOL),
            }
        )
    return by_account


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _parse_usage(
    folder: Path, account_of: dict[str, str]
) -> tuple[dict[tuple[str, str, date], float], int]:
    """Monthly adoption readings from the usage rows, and how many rows."""
    days: dict[tuple[str, date], set[date]] = defaultdict(set)
    features: dict[tuple[str, date], set[str]] = defaultdict(set)
    all_features: set[str] = set()
    count = 0
    columns = ["subscription_id", "usage_date", "feature_name"]
    for row in _rows(folder, FEATURE_USAGE, columns):
        account_id = account_of.get(row.get("subscription_id", ID))
        if account_id is None:
            raise row.error("subscription_id", f"a subscription_id of {SUBSCRIPTIONS}")
        used_on = row.get("usage_date", ISO_DATE)
        feature = row.get("feature_name", ID)
        key = (account_id, month_end(used_on))
        days[key].add(used_on)
        features[key].add(feature)
        all_features.add(feature)
        count += 1

    readings: dict[tuple[str, str, date], float] = {}
    for (account_id, observed_on), used in days.items():
        readings[account_id, LOGIN_DAYS, observed_on] = float(min(len(used), 30))
        share = len(features[account_id, observed_on]) / len(all_features)
        readings[account_id, FEATURE_ADOPTION, observed_on] = share
    return readings, count


def _parse_tickets(folder: Path, accounts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    columns = [
        "ticket_id", "account_id", "submitted_at", "closed_at", "priority",
        "satisfaction_score", "escalation_flag",
    ]  # fmt: skip
    tickets: dict[str, dict[str, Any]] = {}
    for row in _rows(folder, SUPPORT_TICKETS, columns):
        ticket_id = row.get("ticket_id", ID)
        if ticket_id in tickets:
            raise row.error("ticket_id", "a unique ticket_id")
        submitted = row.get("submitted_at", ISO_DATE)
        satisfaction = row.optional("satisfaction_score", AMOUNT)
        tickets[ticket_id] = {
            "customer": _account(row, accounts),
            "opened_at": datetime(
                submitted.year, submitted.month, submitted.day, tzinfo=UTC
            ),
            "closed_at": row.optional("closed_at", ISO_DATETIME),
            "priority": row.get("priority", TEXT),
            "escalated": row.get("escalation_flag", PYTHON_BOOL),
            "satisfaction": None if satisfaction is None else float(satisfaction),
        }
    return tickets


# --- Writing -----------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.new + self.updated + self.unchanged


@dataclass
class LoadResult:
    customers: Counts
    opportunities: Counts
    tickets: Counts
    readings: Counts
    churned: int
    churned_without_event: int
    trials_skipped: int
    usage_rows: int
    seconds: float


def _sync(
    model: type[models.Model],
    wanted: dict[Any, dict[str, Any]],
    existing: models.QuerySet,
    key: Callable[[Any], Any],
) -> Counts:
    """Create the wanted rows that are missing and update those that differ.

    ``wanted`` maps a row's natural key to its field values; ``existing`` holds
    the rows that may match, and ``key`` gives a stored row's natural key.
    One query to read, then bulk writes; unchanged rows are not touched, so a
    second load writes nothing."""
    fields = sorted({name for values in wanted.values() for name in values})
    stored = {key(obj): obj for obj in existing.only("pk", *fields)}

    to_create, to_update = [], []
    for natural_key, values in wanted.items():
        obj = stored.get(natural_key)
        if obj is None:
            to_create.append(model(**values))
        elif any(getattr(obj, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(obj, name, value)
            to_update.append(obj)

    model.objects.bulk_create(to_create, batch_size=1000)
    model.objects.bulk_update(to_update, fields, batch_size=500)
    return Counts(
        new=len(to_create),
        updated=len(to_update),
        unchanged=len(wanted) - len(to_create) - len(to_update),
    )


def load_ravenstack(*, folder: Path, progress: Progress | None = None) -> LoadResult:
    """Parse the five RavenStack files in ``folder`` and write them in one
    transaction: all of it or, on any error, nothing.

    Raises RavenStackError for a value it cannot read. About ten queries plus
    the bulk writes; a few seconds for the published files."""
    started = time.monotonic()
    steps = 6

    def step(done: int) -> None:
        if progress:
            progress(done, steps)

    parsed = parse_folder(Path(folder))
    step(1)

    metrics = dict(
        Metric.objects.filter(key__in=[LOGIN_DAYS, FEATURE_ADOPTION]).values_list(
            "key", "pk"
        )
    )
    if len(metrics) != 2:
        raise Metric.DoesNotExist(
            f"metrics {LOGIN_DAYS} and {FEATURE_ADOPTION} must exist (migrate first)"
        )

    with transaction.atomic():
        customers = _sync(
            Customer,
            {
                account_id: {"external_id": account_id, **values}
                for account_id, values in parsed.customers.items()
            },
            Customer.objects.filter(external_id__in=list(parsed.customers)),
            key=lambda c: c.external_id,
        )
        pk_of = dict(
            Customer.objects.filter(external_id__in=list(parsed.customers)).values_list(
                "external_id", "pk"
            )
        )
        step(2)

        opportunities = _sync(
            Opportunity,
            {
                sub_id: {
                    "external_id": sub_id,
                    "customer_id": pk_of[values["customer"]],
                    **{k: v for k, v in values.items() if k != "customer"},
                }
                for sub_id, values in parsed.opportunities.items()
            },
            Opportunity.objects.filter(external_id__in=list(parsed.opportunities)),
            key=lambda o: o.external_id,
        )
        step(3)

        tickets = _sync(
            Ticket,
            {
                ticket_id: {
                    "external_id": ticket_id,
                    "customer_id": pk_of[values["customer"]],
                    **{k: v for k, v in values.items() if k != "customer"},
                }
                for ticket_id, values in parsed.tickets.items()
            },
            Ticket.objects.filter(external_id__in=list(parsed.tickets)),
            key=lambda t: t.external_id,
        )
        step(4)

        readings = _sync(
            MetricReading,
            {
                (pk_of[account_id], metrics[metric], observed_on): {
                    "customer_id": pk_of[account_id],
                    "metric_id": metrics[metric],
                    "observed_on": observed_on,
                    "value": value,
                    "source": MetricReading.Source.IMPORT,
                }
                for (account_id, metric, observed_on), value in parsed.readings.items()
            },
            MetricReading.objects.filter(
                customer_id__in=list(pk_of.values()),
                metric_id__in=list(metrics.values()),
            ),
            key=lambda r: (r.customer_id, r.metric_id, r.observed_on),
        )
        step(5)

    result = LoadResult(
        customers=customers,
        opportunities=opportunities,
        tickets=tickets,
        readings=readings,
        churned=sum(1 for c in parsed.customers.values() if c["churned_on"]),
        churned_without_event=len(parsed.churned_without_event),
        trials_skipped=parsed.trials_skipped,
        usage_rows=parsed.usage_rows,
        seconds=time.monotonic() - started,
    )
    step(6)
    if parsed.churned_without_event:
        logger.warning(
            "%d accounts are flagged churned but have no churn event; "
            "churned on %s, the last day the files cover",
            len(parsed.churned_without_event),
            DATA_END,
        )
    logger.info(
        "RavenStack loaded from %s in %.1fs: %d customers, %d opportunities, "
        "%d tickets, %d readings",
        folder,
        result.seconds,
        customers.total,
        opportunities.total,
        tickets.total,
        readings.total,
    )
    return result


# --- Scoring and measuring ---------------------------------------------------


def month_ends(first: date = FIRST_MONTH_END, last: date = DATA_END) -> list[date]:
    """Every month end from ``first``'s month to ``last``'s, inclusive."""
    ends, day = [], month_end(first)
    while day <= last:
        ends.append(day)
        day = month_end(day + timedelta(days=1))
    return ends


def score_month_ends(*, progress: Progress | None = None) -> JobRun:
    """Backfill snapshots of every customer at each month end of the data,
    2023-01-31 to 2024-12-31 (24 dates). Inline this returns when done; with
    RQ once queued (wait with ``jobs.wait_for``)."""
    return jobs.start_backfill(
        dates=month_ends(), kind=JobRun.Kind.BACKFILL, progress=progress
    )


@dataclass
class BandChurn:
    """The band mix and what followed it; see ``measure_band_churn``."""

    as_of: date
    shares_at_end: dict[str, tuple[int, float]]
    shares_pooled: dict[str, tuple[int, float]]
    # band -> (observations, churned, churn rate or None)
    churn: dict[str, tuple[int, int, float | None]]
    observation_dates: list[date]
    horizon_days: int


def _shares(counter: Counter) -> dict[str, tuple[int, float]]:
    total = sum(counter.values())
    return {
        band: (counter[band], counter[band] / total if total else 0.0)
        for band in (*BANDS, UNSCORED)
    }


def measure_band_churn(
    *,
    horizon_days: int = 180,
    as_of: date = DATA_END,
    model: ScoreModel | None = None,
) -> BandChurn:
    """Band shares at ``as_of`` and pooled over every month end up to it, and
    the churn rate per band over the next ``horizon_days``.

    Observations are the snapshots at month ends M whose horizon ends before
    ``as_of`` (M + horizon < as_of); one churned when its customer's
    ``churned_on`` falls in (M, M + horizon]. Unscored snapshots are counted
    apart, as the backtest leaves them out. Reads the stored snapshots of the
    active default model (or ``model``): two queries."""
    model = model or ScoreModel.objects.get(status=ScoreModel.Status.ACTIVE, segment="")
    ends = month_ends(last=as_of)
    rows = list(
        ScoreSnapshot.objects.filter(model=model, as_of__in=ends).values_list(
            "as_of", "band", "customer_id"
        )
    )
    churned_on = dict(
        Customer.objects.filter(churned_on__isnull=False).values_list(
            "pk", "churned_on"
        )
    )

    horizon = timedelta(days=horizon_days)
    observed = [m for m in ends if m + horizon < as_of]
    observed_set = set(observed)
    at_end, pooled = Counter(), Counter()
    seen, lost = Counter(), Counter()
    for day, band, customer_id in rows:
        pooled[band] += 1
        if day == as_of:
            at_end[band] += 1
        if day in observed_set:
            seen[band] += 1
            left = churned_on.get(customer_id)
            if left is not None and day < left <= day + horizon:
                lost[band] += 1

    churn = {
        band: (seen[band], lost[band], lost[band] / seen[band] if seen[band] else None)
        for band in (*BANDS, UNSCORED)
    }
    return BandChurn(
        as_of=as_of,
        shares_at_end=_shares(at_end),
        shares_pooled=_shares(pooled),
        churn=churn,
        observation_dates=observed,
        horizon_days=horizon_days,
    )
