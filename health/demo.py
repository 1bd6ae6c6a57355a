"""The demo book: a few hundred made-up customers with 18 months of history
in every kind of input, for demos and for trying score models.

Each customer follows a hidden health trajectory, a level between 0 and 1
over time, and every input is drawn from that level: usage, tickets, NPS,
deals, the CSM's calls and pulses. So the inputs move together and the score
tells the same story as the trajectory. Everything comes from one seeded
random generator: the same seed and as-of date give the same book.

Demo customers are those whose external id starts with ``DEMO-``; demo users
have the usernames of ``DEMO_USERS``. Building the book deletes both and
writes them again in one transaction, so a rerun replaces the book.
"""

from __future__ import annotations

import calendar
import logging
import math
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils.text import slugify

from health.models import (
    Band,
    Customer,
    Interaction,
    Metric,
    MetricReading,
    NpsResponse,
    Opportunity,
    Pulse,
    ScoreSnapshot,
    Ticket,
)
from workbench.roles import ADMIN, CSM, MANAGER

logger = logging.getLogger(__name__)

DEMO_PREFIX = "DEMO-"
HISTORY_MONTHS = 18
DAILY_DAYS = 35
# Rows per INSERT: PostgreSQL takes at most 65,535 parameters per query.
BATCH_SIZE = 2000


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    last_name: str
    role: str


# The first user of each role is the login the command prints.
DEMO_USERS = (
    DemoUser("csm", "Casey", "Morgan", CSM),
    DemoUser("csm2", "Priya", "Nair", CSM),
    DemoUser("csm3", "Tomas", "Berg", CSM),
    DemoUser("csm4", "Aisha", "Okafor", CSM),
    DemoUser("csm5", "Liam", "Walsh", CSM),
    DemoUser("manager", "Morgan", "Reyes", MANAGER),
    DemoUser("manager2", "Hana", "Sato", MANAGER),
    DemoUser("admin", "Alex", "Admin", ADMIN),
)
# Known on purpose: the demo book is for demos, never for real data.
DEMO_PASSWORDS = {
    CSM: "demo-csm-pass",  # noqa: S105
    MANAGER: "demo-manager-pass",  # noqa: S105
    ADMIN: "demo-admin-pass",  # noqa: S105
}


class Trajectory(StrEnum):
    IMPROVING = "improving"
    DECLINING = "declining"
    STEADY_GOOD = "steady_good"
    STEADY_BAD = "steady_bad"
    CHURNING = "churning"


VU, U, N, H, VH = (
    Band.VERY_UNHEALTHY,
    Band.UNHEALTHY,
    Band.NEUTRAL,
    Band.HEALTHY,
    Band.VERY_HEALTHY,
)

# One cycle of (trajectory, band at the start, band at the end). Customers
# take the slots in shuffled cycles, so any book of 21 or more customers has
# every band at its latest date, and a few hundred have them in these
# proportions.
PLAN = [
    (Trajectory.CHURNING, None, None),
    (Trajectory.CHURNING, None, None),
    (Trajectory.STEADY_GOOD, VH, VH),
    (Trajectory.STEADY_GOOD, VH, VH),
    (Trajectory.STEADY_GOOD, VH, VH),
    (Trajectory.STEADY_GOOD, H, H),
    (Trajectory.STEADY_GOOD, H, H),
    (Trajectory.STEADY_GOOD, H, H),
    (Trajectory.STEADY_BAD, N, N),
    (Trajectory.STEADY_BAD, N, N),
    (Trajectory.STEADY_BAD, U, U),
    (Trajectory.STEADY_BAD, VU, VU),
    (Trajectory.IMPROVING, U, N),
    (Trajectory.IMPROVING, N, H),
    (Trajectory.IMPROVING, U, H),
    (Trajectory.IMPROVING, H, VH),
    (Trajectory.DECLINING, H, N),
    (Trajectory.DECLINING, VH, N),
    (Trajectory.DECLINING, N, U),
    (Trajectory.DECLINING, H, U),
    (Trajectory.DECLINING, U, VU),
]

# The hidden level that lands a customer in the middle of each band under
# the default model, found by building books and reading their scores.
LEVELS = {VU: 0.02, U: 0.15, N: 0.37, H: 0.65, VH: 0.9}
LEVEL_SPREAD = 0.04

SEGMENTS = [
    # (name, share of the book, median ARR, contacts, tickets a month)
    ("SMB", 0.55, 18_000, (1, 4), 0.8),
    ("Mid-market", 0.30, 90_000, (3, 5), 1.6),
    ("Enterprise", 0.15, 450_000, (5, 8), 3.0),
]
PRODUCTS = ["Core", "Analytics", "Automation", "Integrations", "Security"]

# fmt: off
NAME_STEMS = [
    "Acorn", "Alder", "Amber", "Apex", "Aster", "Atlas", "Aurora", "Beacon",
    "Birch", "Blue Harbor", "Bright", "Cedar", "Cinder", "Cobalt", "Copper",
    "Crescent", "Delta", "Ember", "Evergreen", "Falcon", "Fern", "Granite",
    "Harbor", "Helix", "Horizon", "Indigo", "Juniper", "Keystone", "Lantern",
    "Linden", "Maple", "Meridian", "Northwind", "Oak", "Orchid", "Pioneer",
    "Quarry", "Redwood", "Riverbend", "Sable", "Sierra", "Silverline",
    "Summit", "Tidewater", "Timber", "Vantage", "Willow", "Zenith",
]
NAME_TRADES = [
    "Analytics", "Bank", "Biotech", "Builders", "Capital", "Clinics",
    "Consulting", "Dental", "Energy", "Foods", "Freight", "Health", "Hotels",
    "Insurance", "Labs", "Legal", "Logistics", "Manufacturing", "Media",
    "Motors", "Outfitters", "Pharma", "Properties", "Retail", "Robotics",
    "Software", "Studios", "Systems", "Telecom", "Travel",
]
NAME_FORMS = ["", "", "", " Inc.", " Ltd", " GmbH", " Group", " & Co."]
FIRST_NAMES = [
    "ada", "ben", "carla", "dev", "elena", "farid", "grace", "hugo", "ines",
    "jonas", "kira", "leo", "maya", "noah", "olga", "pablo", "quinn", "rosa",
    "sam", "tara", "umar", "vera", "wes", "yara", "zoe",
]
LAST_NAMES = [
    "adams", "becker", "chen", "diaz", "evans", "fischer", "garcia", "hall",
    "ito", "jensen", "kim", "lopez", "meyer", "novak", "ortiz", "patel",
    "quinn", "rossi", "silva", "tanaka", "ueda", "vogel", "weber", "young",
]
# fmt: on

SUMMARIES = {
    1: [
        "Team is rolling the product out to another department.",
        "Champion shared a success story with their leadership.",
        "Walked through the roadmap; they want to join the beta.",
        "Renewal talk went well; budget is approved.",
        "Admin training done; usage up since last month.",
    ],
    0: [
        "Routine check-in; no open questions.",
        "Reviewed the open tickets and next steps.",
        "Sent the quarterly usage report.",
        "New admin introduced; shared onboarding material.",
        "Discussed the reporting setup; follow-up booked.",
    ],
    -1: [
        "Champion left the company; no replacement named yet.",
        "Complaints about slow ticket responses.",
        "Budget cuts; they are questioning the value.",
        "Low usage; the rollout stalled after the pilot.",
        "Escalation about repeated outages last week.",
    ],
}
PULSE_NOTES = {
    1: "At risk; escalated to the manager.",
    2: "Worried about adoption and sponsor.",
    3: "Stable, nothing special.",
    4: "Good relationship, growing usage.",
    5: "Advocate; would be a reference.",
}
NPS_COMMENTS = {
    "promoter": ["Great product and support.", "Saves us hours every week.", ""],
    "passive": ["Does the job.", "Reporting could be better.", ""],
    "detractor": ["Too many bugs lately.", "Support is slow.", "Hard to use.", ""],
}


@dataclass
class DemoBook:
    """What ``build_demo_book`` wrote."""

    counts: dict[str, int]
    trajectories: dict[str, int]
    logins: list[tuple[str, str, str]]  # (role, username, password)


# --- Dates -----------------------------------------------------------------


def month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def demo_backfill_dates(as_of: date) -> list[date]:
    """The dates the demo book is scored at, oldest first: the last
    ``HISTORY_MONTHS`` month ends before ``as_of``, every day of the last
    ``DAILY_DAYS`` days (so 30-day changes exist) and ``as_of`` itself."""
    dates = {as_of - timedelta(days=n) for n in range(DAILY_DAYS + 1)}
    year, month = as_of.year, as_of.month
    for _ in range(HISTORY_MONTHS):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        dates.add(month_end(year, month))
    return sorted(dates)


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year + years, day=28)


def at_time(day: date, rng: random.Random) -> datetime:
    """A moment in office hours (UTC) on the day."""
    return datetime.combine(day, time(8), tzinfo=UTC) + timedelta(
        minutes=rng.randrange(10 * 60)
    )


# --- The hidden health level -----------------------------------------------


@dataclass
class HealthPath:
    """A customer's hidden health level over time: ``start`` until
    ``change_from``, a smooth move to ``end`` by ``change_to``, and a weekly
    wobble on top so that no line is ruler-straight."""

    start: float
    end: float
    change_from: date
    change_to: date
    origin: date
    wobble: list[float]

    def level(self, day: date) -> float:
        if day <= self.change_from:
            base = self.start
        elif day >= self.change_to:
            base = self.end
        else:
            x = (day - self.change_from).days / (self.change_to - self.change_from).days
            base = self.start + (self.end - self.start) * x * x * (3 - 2 * x)
        week = min(max((day - self.origin).days // 7, 0), len(self.wobble) - 1)
        return clamp(base + self.wobble[week], 0.0, 1.0)


def clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


# --- The generator ---------------------------------------------------------


@dataclass
class _Plan:
    number: int
    name: str
    trajectory: Trajectory
    segment: str
    arr: Decimal
    contacts: list[str]
    tickets_a_month: float
    high_touch: bool
    customer_since: date
    churned_on: date | None
    renewal_date: date
    path: HealthPath
    owner: User


class _Generator:
    """Draws the whole book from one random generator, in a fixed order."""

    def __init__(
        self,
        *,
        seed: int,
        as_of: date,
        csms: list[User],
        metric_ids: dict[str, int],
    ) -> None:
        self.rng = random.Random(seed)
        self.as_of = as_of
        self.csms = csms
        self.metric_ids = metric_ids
        self.first_scored = demo_backfill_dates(as_of)[0]
        # Windows reach 180 days back (NPS), so history starts that far
        # before the first scored date.
        self.history_start = self.first_scored - timedelta(days=180)
        self.rows: dict[str, list] = {
            "readings": [],
            "tickets": [],
            "nps": [],
            "opportunities": [],
            "interactions": [],
            "pulses": [],
        }

    # Customers --------------------------------------------------------------

    def plan_customers(self, count: int) -> list[_Plan]:
        rng = self.rng
        slots = []
        while len(slots) < count:
            cycle = list(PLAN)
            rng.shuffle(cycle)
            slots.extend(cycle)

        names = self._names(count)
        plans = []
        for number, (trajectory, start_band, end_band) in enumerate(
            slots[:count], start=1
        ):
            segment, _, median_arr, contacts, tickets = self._segment()
            arr = Decimal(round(median_arr * math.exp(rng.gauss(0, 0.45)), -2))
            domain = slugify(names[number - 1]) + ".example"
            people = rng.sample(
                [f"{f}.{la}@{domain}" for f in FIRST_NAMES for la in LAST_NAMES],
                rng.randint(*contacts),
            )
            # Low-touch SMB accounts get no CSM calls; their support record
            # carries the score instead.
            high_touch = segment != "SMB" or rng.random() < 0.5
            if segment == "Enterprise":
                owner = self.csms[rng.randrange(2)]
            else:
                owner = self.csms[rng.randrange(len(self.csms))]

            if trajectory == Trajectory.CHURNING:
                churned_on = self.as_of - timedelta(
                    days=rng.randint(14, 30 * HISTORY_MONTHS)
                )
                since = add_years(churned_on, -rng.randint(1, 5))
                renewal = churned_on
                path = self._churn_path(churned_on)
            else:
                churned_on = None
                since = self._customer_since(end_band)
                renewal = since
                while renewal <= self.as_of:
                    renewal = add_years(renewal, 1)
                path = self._path(trajectory, start_band, end_band)

            plans.append(
                _Plan(
                    number=number,
                    name=names[number - 1],
                    trajectory=trajectory,
                    segment=segment,
                    arr=arr,
                    contacts=people,
                    tickets_a_month=tickets,
                    high_touch=high_touch,
                    customer_since=since,
                    churned_on=churned_on,
                    renewal_date=renewal,
                    path=path,
                    owner=owner,
                )
            )
        return plans

    def _names(self, count: int) -> list[str]:
        pairs = [(s, t) for s in NAME_STEMS for t in NAME_TRADES]
        picked = self.rng.sample(pairs, min(count, len(pairs)))
        names = [f"{s} {t}{self.rng.choice(NAME_FORMS)}" for s, t in picked]
        # More customers than name pairs: number the repeats.
        for extra in range(len(names), count):
            s, t = pairs[extra % len(pairs)]
            names.append(f"{s} {t} {extra // len(pairs) + 1}")
        return names

    def _segment(self) -> tuple:
        roll, total = self.rng.random(), 0.0
        for segment in SEGMENTS:
            total += segment[1]
            if roll < total:
                return segment
        return SEGMENTS[-1]

    def _customer_since(self, end_band: str) -> date:
        # The very unhealthy are mostly young accounts that never took off;
        # otherwise one in seven joined during the scored history and the
        # rest up to eight years before it.
        if end_band == VU:
            days = self.rng.randint(200, 800)
        elif self.rng.random() < 1 / 7:
            days = self.rng.randint(60, 30 * HISTORY_MONTHS)
        else:
            days = self.rng.randint(30 * HISTORY_MONTHS, 8 * 365)
        return self.as_of - timedelta(days=days)

    def _level(self, band: str) -> float:
        return clamp(
            LEVELS[band] + self.rng.uniform(-LEVEL_SPREAD, LEVEL_SPREAD), 0.0, 1.0
        )

    def _wobble(self) -> list[float]:
        weeks = (self.as_of - self.history_start).days // 7 + 2
        value, wobble = 0.0, []
        for _ in range(weeks):
            value = 0.8 * value + self.rng.gauss(0, 0.012)
            wobble.append(value)
        return wobble

    def _path(self, trajectory: Trajectory, start_band, end_band) -> HealthPath:
        rng = self.rng
        start, end = self._level(start_band), self._level(end_band)
        if trajectory in (Trajectory.IMPROVING, Trajectory.DECLINING):
            if rng.random() < 0.45:
                # A mover: the change ends in the last few weeks.
                change_to = self.as_of - timedelta(days=rng.randint(0, 25))
                change_from = change_to - timedelta(days=rng.randint(30, 90))
            else:
                change_to = self.as_of - timedelta(days=rng.randint(60, 400))
                change_from = change_to - timedelta(days=rng.randint(60, 150))
        else:
            change_from = change_to = self.history_start
        return HealthPath(
            start, end, change_from, change_to, self.history_start, self._wobble()
        )

    def _churn_path(self, churned_on: date) -> HealthPath:
        rng = self.rng
        change_to = churned_on - timedelta(days=rng.randint(0, 20))
        return HealthPath(
            start=rng.uniform(0.45, 0.65),
            end=rng.uniform(0.0, 0.08),
            change_from=change_to - timedelta(days=rng.randint(120, 240)),
            change_to=change_to,
            origin=self.history_start,
            wobble=self._wobble(),
        )

    # Inputs -----------------------------------------------------------------

    def draw_inputs(self, plan: _Plan, customer_id: int) -> None:
        """Every input record of one customer, from the start of its history
        to the day before it churned or the as-of date."""
        first = max(plan.customer_since, self.history_start)
        last = self.as_of
        if plan.churned_on:
            last = min(plan.churned_on - timedelta(days=1), last)
        if first > last:
            return
        self._readings(plan, customer_id, first, last)
        self._opportunities(plan, customer_id, first, last)

        # Records with a time of day stop the day before, so that none lies
        # later today than now when the book is built as of today.
        last = min(last, self.as_of - timedelta(days=1))
        self._tickets(plan, customer_id, first, last)
        self._nps(plan, customer_id, first, last)
        if plan.high_touch:
            self._interactions(plan, customer_id, first, last)
            self._pulses(plan, customer_id, first, last)

    def _readings(self, plan: _Plan, customer_id: int, first: date, last: date):
        rng, rows = self.rng, self.rows["readings"]
        # Readings older than the freshness window of the first scored date
        # would never be used.
        day = max(first, self.first_scored - timedelta(days=91))
        day += timedelta(days=rng.randrange(7))
        while day <= last:
            level = plan.path.level(day)
            values = {
                "active_user_ratio": round(
                    clamp(0.85 * level + rng.gauss(0, 0.03), 0, 1), 3
                ),
                "feature_adoption_ratio": round(
                    clamp(0.62 * level + rng.gauss(0, 0.02), 0, 1), 3
                ),
                "login_days_30d": float(
                    round(clamp(20 * level + rng.gauss(0, 1.5), 0, 30))
                ),
            }
            for key, value in values.items():
                rows.append(
                    MetricReading(
                        customer_id=customer_id,
                        metric_id=self.metric_ids[key],
                        value=value,
                        observed_on=day,
                    )
                )
            day += timedelta(days=7)

    def _tickets(self, plan: _Plan, customer_id: int, first: date, last: date):
        rng, rows = self.rng, self.rows["tickets"]
        end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
        day, count = first, 0
        while True:
            level = plan.path.level(day)
            rate = plan.tickets_a_month * (0.4 + 2 * (1 - level))
            day += timedelta(days=rng.expovariate(rate / 30))
            if day > last:
                return
            level = plan.path.level(day)
            count += 1
            opened = at_time(day, rng)
            median_hours = 3 + 120 * (1 - level) ** 2
            hours = median_hours * math.exp(rng.gauss(0, 0.6))
            closed = opened + timedelta(hours=hours)
            escalated = rng.random() < 0.02 + 0.5 * (1 - level) ** 2
            if escalated:
                priority = rng.choice(["high", "urgent"])
            else:
                priority = rng.choice(["low", "normal", "normal", "high"])
            satisfaction = None
            if closed < end and rng.random() < 0.7:
                satisfaction = float(
                    round(clamp(1 + 4 * level + rng.gauss(0, 0.7), 1, 5))
                )
            rows.append(
                Ticket(
                    customer_id=customer_id,
                    external_id=f"{DEMO_PREFIX}T{plan.number:04d}-{count:04d}",
                    opened_at=opened,
                    closed_at=closed if closed < end else None,
                    priority=priority,
                    escalated=escalated,
                    satisfaction=satisfaction,
                )
            )

    def _nps(self, plan: _Plan, customer_id: int, first: date, last: date):
        rng, rows = self.rng, self.rows["nps"]
        # A survey goes out each quarter; most contacts answer within weeks.
        for year in range(first.year, last.year + 1):
            for month in (1, 4, 7, 10):
                wave = date(year, month, 20)
                for contact in plan.contacts:
                    day = wave + timedelta(days=rng.randrange(21))
                    if not first <= day <= last or rng.random() > 0.6:
                        continue
                    level = plan.path.level(day)
                    # P(promoter) - P(detractor) = 2 x level - 1, so the NPS
                    # follows the level from -100 to +100.
                    roll = rng.random()
                    if roll < level**2:
                        kind, score = "promoter", rng.choice([9, 10])
                    elif roll < 1 - (1 - level) ** 2:
                        kind, score = "passive", rng.choice([7, 8])
                    else:
                        kind = "detractor"
                        score = round(clamp(6 * level + rng.gauss(3, 1.5), 0, 6))
                    rows.append(
                        NpsResponse(
                            customer_id=customer_id,
                            contact=contact,
                            score=score,
                            comment=rng.choice(NPS_COMMENTS[kind]),
                            responded_at=at_time(day, rng),
                        )
                    )

    def _opportunities(self, plan: _Plan, customer_id: int, first: date, last: date):
        rng, rows = self.rng, self.rows["opportunities"]
        since, arr = plan.customer_since, plan.arr
        count = 0

        def add(product, kind, stage, amount, created, closed) -> None:
            nonlocal count
            count += 1
            rows.append(
                Opportunity(
                    customer_id=customer_id,
                    external_id=f"{DEMO_PREFIX}O{plan.number:04d}-{count:03d}",
                    product=product,
                    kind=kind,
                    stage=stage,
                    amount=Decimal(round(float(amount), -2)),
                    created_on=created,
                    closed_on=closed,
                )
            )

        won, lost, open_ = (
            Opportunity.Stage.WON,
            Opportunity.Stage.LOST,
            Opportunity.Stage.OPEN,
        )
        add("Core", Opportunity.Kind.NEW, won, arr, since - timedelta(days=45), since)
        owned = ["Core"]

        # Older customers bought more products before the scored history,
        # the healthier ones more often.
        year = add_years(since, 1)
        while year < self.history_start:
            if len(owned) < len(PRODUCTS) and rng.random() < plan.path.start * 0.5:
                product = rng.choice([p for p in PRODUCTS if p not in owned])
                owned.append(product)
                closed = year + timedelta(days=rng.randrange(200))
                add(
                    product,
                    Opportunity.Kind.CROSS_SELL,
                    won,
                    arr * Decimal("0.2"),
                    closed - timedelta(days=60),
                    closed,
                )
            year = add_years(year, 1)

        # Renewals on each anniversary; a churned customer lost its last.
        anniversary, end = add_years(since, 1), plan.churned_on or self.as_of
        while anniversary <= end:
            created = anniversary - timedelta(days=90)
            if anniversary == plan.churned_on:
                add(owned[0], Opportunity.Kind.RENEWAL, lost, arr, created, end)
            else:
                closed = min(anniversary - timedelta(days=rng.randrange(15)), end)
                add(owned[0], Opportunity.Kind.RENEWAL, won, arr, created, closed)
            anniversary = add_years(anniversary, 1)
        if plan.churned_on is None and anniversary - timedelta(days=90) <= self.as_of:
            add(
                owned[0],
                Opportunity.Kind.RENEWAL,
                open_,
                arr,
                anniversary - timedelta(days=90),
                None,
            )

        # Expansion deals during the history: pursued more often with
        # healthy customers, won when the customer is healthy at closing.
        day = max(first, since + timedelta(days=60))
        while True:
            level = plan.path.level(day)
            day += timedelta(days=rng.expovariate(1 / (90 + 120 * (1 - level))))
            if day > last:
                return
            closed = day + timedelta(days=rng.randint(20, 90))
            unowned = [p for p in PRODUCTS if p not in owned]
            if unowned and rng.random() < 0.4:
                kind, product = Opportunity.Kind.CROSS_SELL, rng.choice(unowned)
            else:
                kind, product = Opportunity.Kind.UPSELL, rng.choice(owned)
            amount = arr * Decimal(str(round(rng.uniform(0.05, 0.3), 2)))
            if closed > last:
                if plan.churned_on:
                    add(product, kind, lost, amount, day, plan.churned_on)
                else:
                    add(product, kind, open_, amount, day, None)
                continue
            if rng.random() < clamp(1.25 * plan.path.level(closed) - 0.15, 0.02, 0.97):
                add(product, kind, won, amount, day, closed)
                if product not in owned:
                    owned.append(product)
            else:
                add(product, kind, lost, amount, day, closed)

    def _interactions(self, plan: _Plan, customer_id: int, first: date, last: date):
        rng, rows = self.rng, self.rows["interactions"]
        kinds = [
            Interaction.Kind.CALL,
            Interaction.Kind.CALL,
            Interaction.Kind.EMAIL,
            Interaction.Kind.EMAIL,
            Interaction.Kind.MEETING,
            Interaction.Kind.QBR if plan.segment != "SMB" else Interaction.Kind.OTHER,
        ]
        day = first
        while True:
            # Unhappy customers are harder to reach: the gaps grow.
            level = plan.path.level(day)
            gap = (6 + 100 * (1 - level) ** 2) * rng.uniform(0.5, 1.5)
            day += timedelta(days=gap)
            if day > last:
                return
            level = plan.path.level(day)
            roll = rng.random()
            if roll < level**2:
                sentiment = 1
            elif roll < 1 - (1 - level) ** 2:
                sentiment = 0
            else:
                sentiment = -1
            rows.append(
                Interaction(
                    customer_id=customer_id,
                    csm=plan.owner,
                    kind=rng.choice(kinds),
                    occurred_at=at_time(day, rng),
                    sentiment=sentiment,
                    summary=rng.choice(SUMMARIES[sentiment]),
                )
            )

    def _pulses(self, plan: _Plan, customer_id: int, first: date, last: date):
        rng, rows = self.rng, self.rows["pulses"]
        day = first + timedelta(days=rng.randrange(30))
        while day <= last:
            level = plan.path.level(day)
            rating = round(clamp(1 + 4 * level + rng.gauss(0, 0.5), 1, 5))
            rows.append(
                Pulse(
                    customer_id=customer_id,
                    csm=plan.owner,
                    rating=rating,
                    note=PULSE_NOTES[rating],
                    entered_at=at_time(day, rng),
                )
            )
            day += timedelta(days=rng.randint(21, 40))


# --- The service -----------------------------------------------------------


def demo_customers():
    return Customer.objects.filter(external_id__startswith=DEMO_PREFIX)


def delete_demo_book() -> None:
    """Delete the demo customers (with all their inputs and snapshots) and
    the demo users."""
    with transaction.atomic():
        demo_customers().delete()
        User.objects.filter(username__in=[u.username for u in DEMO_USERS]).delete()


def _create_users() -> dict[str, User]:
    groups = {g.name: g for g in Group.objects.filter(name__in=DEMO_PASSWORDS)}
    # Hashing is slow on purpose; one hash per role is enough for a demo.
    hashes = {role: make_password(pw) for role, pw in DEMO_PASSWORDS.items()}
    users = User.objects.bulk_create(
        [
            User(
                username=u.username,
                first_name=u.first_name,
                last_name=u.last_name,
                email=f"{u.username}@demo.example.com",
                password=hashes[u.role],
                is_staff=u.role == ADMIN,
                is_superuser=u.role == ADMIN,
            )
            for u in DEMO_USERS
        ]
    )
    User.groups.through.objects.bulk_create(
        [
            User.groups.through(user_id=user.pk, group_id=groups[u.role].pk)
            for user, u in zip(users, DEMO_USERS, strict=True)
        ]
    )
    return {user.username: user for user in users}


def build_demo_book(*, customers: int = 300, seed: int = 1, as_of: date) -> DemoBook:
    """Replace the demo book with a fresh one of ``customers`` customers and
    18 months of inputs up to ``as_of``, in one transaction. Scores nothing:
    the caller backfills ``demo_backfill_dates(as_of)``.

    The old book goes with one delete per related table; the new one comes
    with one bulk insert per kind of row, in batches of ``BATCH_SIZE``."""
    if customers < 1:
        raise ValueError("a demo book needs at least one customer")

    with transaction.atomic():
        delete_demo_book()
        users = _create_users()
        csms = [users[u.username] for u in DEMO_USERS if u.role == CSM]

        generator = _Generator(
            seed=seed,
            as_of=as_of,
            csms=csms,
            metric_ids=dict(Metric.objects.values_list("key", "pk")),
        )
        plans = generator.plan_customers(customers)
        created = Customer.objects.bulk_create(
            [
                Customer(
                    name=plan.name,
                    external_id=f"{DEMO_PREFIX}{plan.number:04d}",
                    support_id=f"demo-sup-{plan.number:04d}",
                    analytics_id=f"demo-app-{plan.number:04d}",
                    segment=plan.segment,
                    arr=plan.arr,
                    owner=plan.owner,
                    customer_since=plan.customer_since,
                    renewal_date=plan.renewal_date,
                    churned_on=plan.churned_on,
                )
                for plan in plans
            ],
            batch_size=BATCH_SIZE,
        )
        for plan, customer in zip(plans, created, strict=True):
            generator.draw_inputs(plan, customer.pk)

        counts = {"customers": len(created), "users": len(users)}
        for kind, model in [
            ("readings", MetricReading),
            ("tickets", Ticket),
            ("nps", NpsResponse),
            ("opportunities", Opportunity),
            ("interactions", Interaction),
            ("pulses", Pulse),
        ]:
            rows = generator.rows[kind]
            model.objects.bulk_create(rows, batch_size=BATCH_SIZE)
            counts[kind] = len(rows)

    logger.info("Demo book built as of %s: %s", as_of, counts)
    return DemoBook(
        counts=counts,
        trajectories=dict(Counter(str(p.trajectory) for p in plans)),
        logins=[
            (role, next(u.username for u in DEMO_USERS if u.role == role), password)
            for role, password in DEMO_PASSWORDS.items()
        ],
    )


def demo_band_mix(as_of: date) -> dict[str, int]:
    """How many demo customers are in each band as of the date (bands in
    their order, empty ones included)."""
    found = Counter(
        ScoreSnapshot.objects.filter(
            customer__in=demo_customers(), as_of=as_of
        ).values_list("band", flat=True)
    )
    return {band: found.get(band, 0) for band in Band.values}
