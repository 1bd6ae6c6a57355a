"""Speed at scale: a synthetic book of N customers, and our code measured
against the floor the database itself sets, in the same run.

PostgreSQL only. The book is made by set-based SQL (``generate_series``) in
the database itself, so 15.6 million readings take minutes, not hours, and
is recorded in the ``benchmark_book`` table: a later run with the same N and
seed reuses it. Everything the measurements write (snapshots, playbook work,
job runs) is reset before they start, so two runs on one book do the same
work.

``run_benchmark`` returns one dict with every figure by name; the
``benchmark`` command prints it and writes it as JSON.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import platform
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from unittest import mock

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import NoReverseMatch, reverse

from health import importers, jobs, services
from health.inputs import active_models, load_model_spec, scorable_customers
from health.models import (
    Customer,
    ImportBatch,
    Interaction,
    MetricReading,
    NpsResponse,
    Opportunity,
    ScoreSnapshot,
    Ticket,
)
from health.scoring import (
    Activity,
    derive_metrics,
    end_of_day,
    score_customer,
    tenure_on,
)
from workbench.roles import CSM, MANAGER

logger = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_SEED = 7
MARKER_TABLE = "benchmark_book"
# Bumped when the generator changes, so that an older book is not reused.
BOOK_VERSION = 2
_MARKER_COLUMNS = "customers, seed, as_of, seconds, counts, version"
BENCH_PREFIX = "BENCH-"
# One CSM per this many customers, as a CS team of a high-touch-ish book.
CUSTOMERS_PER_CSM = 250
IMPORTED_METRICS = ("active_user_ratio", "feature_adoption_ratio", "login_days_30d")
WEEKS_OF_READINGS = 52
PAGE_REQUESTS = 50
# A page may stop early, after at least PAGE_MIN_REQUESTS, once it has taken
# this long: a page that slow misses its target anyway, and fifty requests
# of it would make the run too long to repeat.
PAGE_BUDGET_SECONDS = 60
PAGE_MIN_REQUESTS = 5
NAIVE_SAMPLE = 200
IMPORT_ROWS = 1_000_000
# Worker processes get this long to come up and to finish a run; a run
# that takes longer is broken, not slow, and the benchmark stops.
WORKER_START_TIMEOUT = 60
RUN_TIMEOUT = 1800

TARGETS = {
    "score_all_ratio_to_floor_max": 3.0,
    "score_all_speedup_vs_naive_min": 50.0,
    "rq_speedup_2_vs_1_min": 1.6,
    "import_ratio_to_floor_max": 4.0,
    "page_p95_ms_max": 150.0,
    "peak_rss_mb_max": 500.0,
}


class BenchmarkRefused(Exception):
    """The database is not one the benchmark may use."""


Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def check_database() -> None:
    if connection.vendor != "postgresql":
        raise BenchmarkRefused(
            "The benchmark runs on PostgreSQL only (it uses COPY and "
            f"generate_series); this database is {connection.vendor}. Set "
            "DATABASE_URL=postgres://USER@HOST:PORT/NAME, preferably an empty "
            "database of its own."
        )


# SQL below is built with f-strings only from this module's constants (table
# names, the health formula), never from input; values go as parameters.

# --- The book ------------------------------------------------------------------


@dataclass(frozen=True)
class Book:
    customers: int
    seed: int
    as_of: date
    generated_seconds: float
    reused: bool
    counts: dict


def _marker_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (
                customers integer NOT NULL,
                seed integer NOT NULL,
                as_of date NOT NULL,
                generated_at timestamptz NOT NULL DEFAULT now(),
                seconds double precision NOT NULL,
                counts jsonb NOT NULL
            )
            """
        )
        cursor.execute(
            f"ALTER TABLE {MARKER_TABLE} ADD COLUMN IF NOT EXISTS "
            "version integer NOT NULL DEFAULT 1"
        )


def _recorded_book() -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_MARKER_COLUMNS} FROM {MARKER_TABLE}"  # noqa: S608
        )
        return cursor.fetchone()


def ensure_book(customers: int, seed: int = DEFAULT_SEED, say: Say = _quiet) -> Book:
    """The generated book of ``customers`` customers, made now unless the
    database already holds one with the same size and seed.

    Refuses a database that holds customers the benchmark did not make: it
    wipes the health tables before generating."""
    call_command("migrate", interactive=False, verbosity=0)
    _marker_table()
    recorded = _recorded_book()
    same = recorded and recorded[:2] == (customers, seed)
    if same and recorded[5] == BOOK_VERSION:
        same = Customer.objects.count() == customers
    else:
        same = False
    if same:
        say(f"Reusing the generated book of {customers:,} customers.")
        n, s, as_of, seconds, counts, _ = recorded
        # Django leaves jsonb of raw queries as text.
        counts = json.loads(counts) if isinstance(counts, str) else counts
        return Book(n, s, as_of, seconds, True, counts)

    foreign = Customer.objects.exclude(external_id__startswith=BENCH_PREFIX)
    if recorded is None and Customer.objects.exists() or foreign.exists():
        raise BenchmarkRefused(
            "This database holds customers the benchmark did not generate, and "
            "generating a book wipes them. Point DATABASE_URL at a database of "
            "its own (e.g. .../wb_bench); the benchmark creates its tables."
        )

    say(f"Generating a book of {customers:,} customers (seed {seed})...")
    started = time.perf_counter()
    as_of = datetime.now(UTC).date() - timedelta(days=1)
    _wipe()
    counts = _generate(customers, seed, as_of)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {MARKER_TABLE} "  # noqa: S608
            "(customers, seed, as_of, seconds, counts, version) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [customers, seed, as_of, seconds, json.dumps(counts), BOOK_VERSION],
        )
    say(f"Generated in {seconds:.1f}s: {counts}")
    return Book(customers, seed, as_of, seconds, False, counts)


def _wipe() -> None:
    """Empty every table the book fills; only ever on a benchmark database
    (``ensure_book`` checks)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {MARKER_TABLE}")  # noqa: S608
        cursor.execute(
            "TRUNCATE health_customer, health_importbatch, health_jobrun CASCADE"
        )
    User.objects.filter(username__startswith="bench-").delete()


# The customer's hidden health, 0-1, from its id and the seed: it shapes every
# input, so that the book has all five bands and scores agree with inputs.
_HEALTH = "(((c.id * 2654435761 + {seed}) %% 1000) / 1000.0)"


def _generate(n: int, seed: int, as_of: date) -> dict:
    csm_group = Group.objects.get(name=CSM)
    csms = User.objects.bulk_create(
        [
            User(
                username=f"bench-csm-{i:04d}",
                email=f"bench-csm-{i:04d}@example.com",
                first_name="Bench",
                last_name=f"CSM {i:04d}",
            )
            for i in range(max(2, n // CUSTOMERS_PER_CSM))
        ]
    )
    csm_group.user_set.add(*csms)
    manager = User.objects.create(
        username="bench-manager", email="bench-manager@example.com"
    )
    manager.groups.add(Group.objects.get(name=MANAGER))
    csm_ids = sorted(u.pk for u in csms)

    health = _HEALTH.format(seed=seed)
    drift = "((((c.id * 7919) %% 201) - 100) / 1000.0)"
    end = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), UTC)
    params = {
        "n": n,
        "as_of": as_of,
        "end": end,
        "csms": csm_ids,
        "prefix": BENCH_PREFIX,
        "metrics": list(IMPORTED_METRICS),
        "weeks": WEEKS_OF_READINGS,
    }
    statements = [
        # Deterministic random() for the statements below, in this session.
        ("SELECT setseed(%s)", [((seed % 1000) / 1000.0)]),
        (
            """
            INSERT INTO health_customer (name, external_id, support_id,
                analytics_id, segment, arr, owner_id, customer_since,
                renewal_date, churned_on, created_at, updated_at)
            SELECT
                (ARRAY['Acme','Globex','Initech','Umbrella','Hooli','Vandelay',
                       'Stark','Wayne','Tyrell','Soylent'])[1 + i %% 10]
                    || ' ' || to_char(i, 'FM0000000'),
                %(prefix)s || to_char(i, 'FM0000000'), '', '',
                CASE WHEN i %% 10 = 0 THEN 'enterprise'
                     WHEN i %% 10 < 4 THEN 'mid-market' ELSE 'smb' END,
                round((5000 + random() * 195000)::numeric, 2),
                (%(csms)s::int[])[1 + i %% cardinality(%(csms)s::int[])],
                %(as_of)s::date - (60 + (random() * 2000)::int),
                %(as_of)s::date + (1 + (random() * 364)::int),
                -- One in twenty churned within the year: not scored.
                CASE WHEN i %% 20 = 7
                     THEN %(as_of)s::date - (1 + (random() * 300)::int) END,
                now(), now()
            FROM generate_series(1, %(n)s) AS i
            """,  # noqa: S608
            params,
        ),
        (
            f"""
            INSERT INTO health_metricreading (customer_id, metric_id, value,
                observed_on, source)
            SELECT c.id, m.id,
                -- Health, a slow drift over the year (up or down by up
                -- to 0.1) and a little weekly noise: bands move now and
                -- then, not every week.
                CASE m.key
                    WHEN 'login_days_30d' THEN
                        round(least(30, greatest(0, 30 * ({health}
                            + {drift} * (%(weeks)s - w) / %(weeks)s
                            + (random() - 0.5) * 0.1)))::numeric)
                    ELSE least(1, greatest(0, {health} * 0.95
                        + {drift} * (%(weeks)s - w) / %(weeks)s
                        + (random() - 0.5) * 0.06))
                END,
                %(as_of)s::date - 7 * w, 'import'
            FROM health_customer c
            CROSS JOIN health_metric m
            CROSS JOIN generate_series(0, %(weeks)s - 1) AS w
            WHERE m.key = ANY(%(metrics)s)
            -- A few customers send no product data at all.
            AND c.id %% 37 <> 0
            """,  # noqa: S608
            params,
        ),
        (
            f"""
            INSERT INTO health_ticket (customer_id, external_id, opened_at,
                closed_at, priority, escalated, satisfaction)
            SELECT c.id, 'BT-' || c.id || '-' || k, t.opened,
                CASE WHEN random() < 0.95
                    AND t.opened + t.hours * interval '1 hour' < %(end)s
                    THEN t.opened + t.hours * interval '1 hour' END,
                (ARRAY['low','normal','high','urgent'])[1 + k %% 4],
                random() < 0.02 + 0.15 * (1 - {health}),
                CASE WHEN random() < 0.4 THEN 1 + round(4 * {health}) END
            FROM health_customer c
            CROSS JOIN generate_series(0, 11) AS k
            CROSS JOIN LATERAL (
                SELECT %(end)s::timestamptz
                           - random() * interval '365 days' AS opened,
                       exp(random() * 3 + 3 * (1 - {health})) AS hours
                OFFSET 0
            ) t
            WHERE random() < 0.3 + 0.6 * (1 - {health})
            """,  # noqa: S608
            params,
        ),
        (
            f"""
            INSERT INTO health_npsresponse (customer_id, contact, score,
                comment, responded_at)
            SELECT c.id, 'contact-' || k || '@' || c.external_id,
                least(10, greatest(0,
                    round(10 * {health} + (random() - 0.3) * 5)))::int,
                '',
                %(end)s::timestamptz - (s * 182 + random() * 60) * interval '1 day'
            FROM health_customer c
            CROSS JOIN generate_series(0, 3) AS k
            CROSS JOIN generate_series(0, 1) AS s
            WHERE random() < 0.7
            """,  # noqa: S608
            params,
        ),
        (
            f"""
            INSERT INTO health_opportunity (customer_id, external_id, product,
                kind, stage, amount, created_on, closed_on)
            SELECT c.id, 'BO-' || c.id || '-' || k,
                (ARRAY['Core','Analytics','Automation','Security'])[1 + k],
                (ARRAY['new','renewal','upsell','cross_sell'])[1 + k],
                o.stage, round((1000 + random() * 50000)::numeric, 2),
                o.created,
                CASE WHEN o.stage <> 'open'
                    THEN least(%(as_of)s::date, o.created + 30 + (k * 17) %% 60)
                END
            FROM health_customer c
            CROSS JOIN generate_series(0, 3) AS k
            CROSS JOIN LATERAL (
                SELECT %(as_of)s::date - (10 + (random() * 700)::int) AS created,
                    CASE WHEN k = 0 THEN 'won'
                         WHEN random() < 0.15 THEN 'open'
                         WHEN random() < 0.3 + 0.6 * {health} THEN 'won'
                         ELSE 'lost' END AS stage
                OFFSET 0
            ) o
            WHERE k = 0 OR random() < 0.6
            """,  # noqa: S608
            params,
        ),
        (
            f"""
            INSERT INTO health_interaction (customer_id, csm_id, kind,
                occurred_at, sentiment, summary, created_at)
            SELECT c.id, c.owner_id,
                (ARRAY['call','meeting','qbr','email','other'])[1 + k %% 5],
                %(end)s::timestamptz - random() * interval '365 days',
                CASE WHEN random() < 0.2 + 0.5 * {health} THEN 1
                     WHEN random() < 0.6 THEN 0 ELSE -1 END,
                '', now()
            FROM health_customer c
            CROSS JOIN generate_series(0, 17) AS k
            WHERE random() < 0.8
            """,  # noqa: S608
            params,
        ),
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        for sql, args in statements:
            cursor.execute(sql, args)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    return {
        "customers": Customer.objects.count(),
        "csms": len(csm_ids),
        "readings": MetricReading.objects.count(),
        "tickets": Ticket.objects.count(),
        "nps_responses": NpsResponse.objects.count(),
        "opportunities": Opportunity.objects.count(),
        "interactions": Interaction.objects.count(),
    }


def reset_results() -> None:
    """Forget every score and what it set off, so that each run of the
    benchmark on one book does the same work."""
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE health_scoresnapshot, health_bandtally, health_jobrun CASCADE"
        )
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE tablename IN "
            "('playbooks_assignment', 'playbooks_task')"
        )
        tables = [row[0] for row in cursor.fetchall()]
        if tables:
            cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        cursor.execute("VACUUM ANALYZE health_scoresnapshot")
    services.refresh_current_scores()


def delete_snapshots_on(as_of: date) -> None:
    delete_snapshots_on_each([as_of])


def delete_snapshots_on_each(dates: list[date]) -> None:
    """Delete the snapshots of the dates, first unhooking the rows that point
    at them (playbook assignments name the snapshot that set them off; the
    database leaves SET_NULL to Django)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT cl.relname, att.attname
            FROM pg_constraint con
            JOIN pg_class cl ON cl.oid = con.conrelid
            JOIN pg_attribute att
                ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
            WHERE con.contype = 'f'
              AND con.confrelid = 'health_scoresnapshot'::regclass
            """
        )
        for table, column in cursor.fetchall():
            cursor.execute(
                f"UPDATE {table} SET {column} = NULL WHERE {column} IN "  # noqa: S608
                "(SELECT id FROM health_scoresnapshot WHERE as_of = ANY(%s))",
                [dates],
            )
        cursor.execute(
            "DELETE FROM health_scoresnapshot WHERE as_of = ANY(%s)", [dates]
        )
        # Fresh statistics, as autovacuum would have them by the next
        # nightly run: a plan made for the table before a big delete or
        # backfill can scan a whole day's snapshots per chunk.
        cursor.execute("VACUUM ANALYZE health_scoresnapshot")
    # Only customers whose current score was of those dates lose it.
    affected = Customer.objects.filter(scored_on__in=dates).values_list("pk", flat=True)
    services.refresh_current_scores(customer_ids=list(affected))
    services.forget_band_tallies(days=dates)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE health_customer")


def month_ends_before(day: date, count: int = 12) -> list[date]:
    ends, end = [], day.replace(day=1) - timedelta(days=1)
    for _ in range(count):
        ends.append(end)
        end = end.replace(day=1) - timedelta(days=1)
    return ends[::-1]


# --- Measurements ----------------------------------------------------------------


def _rss_mb() -> float:
    """This process's peak resident memory, in MB.

    Linux's VmHWM, where there is one: ru_maxrss carries the parent's peak
    over fork and exec, so a child started by a big process would report
    the parent's memory, not its own."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_env(**extra: str) -> dict[str, str]:
    """The environment of a process the benchmark starts: the same database
    and Redis, DEBUG off (as deployed: no query log), a throwaway key."""
    return {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] or ""
    if db["PASSWORD"]:
        auth += f":{db['PASSWORD']}"
    return (
        f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
        f"{db['NAME']}"
    )


def measure_score_all_here(as_of: date, announce: bool = True) -> dict:
    """Score every customer inline, in this process; what a child process
    started by ``score_all_inline`` runs and prints. Without ``announce``
    no band change goes out, so the playbooks' reaction is left out."""
    silence = mock.patch.object(services, "_announce", lambda *args: None)
    with (
        override_settings(JOBS_INLINE=True),
        silence if not announce else nullcontext(),
    ):
        before = _rss_mb()
        started = time.perf_counter()
        run = jobs.start_score_all(as_of=as_of)
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss_mb": _rss_mb(),
        "start_rss_mb": before,
        "scored": run.done,
        "status": run.status,
    }


def score_all_inline(as_of: date, announce: bool = True) -> dict:
    """Score all inline in a fresh process, so that its peak resident memory
    is the scoring's own and not this process's history."""
    delete_snapshots_on(as_of)
    connection.close()
    proc = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "benchmark",
            "--score-all-child",
            as_of.isoformat(),
            *([] if announce else ["--no-announce"]),
        ],
        cwd=PROJECT,
        env=_child_env(DATABASE_URL=_database_url(), REDIS_URL=""),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"score all failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def band_changes(as_of: date) -> int:
    """Customers whose band on the date differs from their newest one
    before it: the changes a score-all run announces."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM health_scoresnapshot cur
            JOIN LATERAL (
                SELECT band FROM health_scoresnapshot
                WHERE customer_id = cur.customer_id AND as_of < cur.as_of
                ORDER BY as_of DESC, computed_at DESC LIMIT 1
            ) AS prev ON true
            WHERE cur.as_of = %s AND cur.band <> prev.band
            """,
            [as_of],
        )
        return cursor.fetchone()[0]


def _fetch_all(cursor, sql: str, params) -> int:
    cursor.execute(sql, params)
    return len(cursor.fetchall())


def score_all_floor(as_of: date, breakdown: str) -> dict:
    """The floor of score all: the same inputs read by plain SQL aggregates,
    every row fetched, and as many snapshot rows written with COPY into a
    table shaped and indexed like the snapshots."""
    end = end_of_day(as_of)
    p = {
        "d": as_of,
        "end": end,
        "d90": as_of - timedelta(days=90),
        "d365": as_of - timedelta(days=365),
        "t90": end - timedelta(days=90),
        "t180": end - timedelta(days=180),
        "metrics": list(IMPORTED_METRICS),
    }
    scorable = """
        SELECT id FROM health_customer
        WHERE (customer_since IS NULL OR customer_since <= %(d)s)
          AND (churned_on IS NULL OR churned_on > %(d)s)
    """
    reads = {
        "customers": scorable,
        "readings": f"""
            SELECT DISTINCT ON (r.customer_id, r.metric_id)
                r.customer_id, r.metric_id, r.value, r.observed_on
            FROM health_metricreading r
            WHERE r.metric_id IN (
                    SELECT id FROM health_metric WHERE key = ANY(%(metrics)s))
              AND r.observed_on <= %(d)s AND r.observed_on > %(d90)s
              AND r.customer_id IN ({scorable})
            ORDER BY r.customer_id, r.metric_id, r.observed_on DESC
        """,  # noqa: S608
        "tickets": f"""
            SELECT customer_id,
                percentile_cont(0.5) WITHIN GROUP (
                    ORDER BY extract(epoch FROM closed_at - opened_at) / 3600)
                    FILTER (WHERE closed_at >= %(t90)s AND closed_at < %(end)s),
                count(*) FILTER (WHERE escalated AND opened_at >= %(t90)s)
            FROM health_ticket
            WHERE opened_at < %(end)s AND customer_id IN ({scorable})
            GROUP BY customer_id
        """,  # noqa: S608
        "nps": f"""
            SELECT customer_id, count(*),
                count(*) FILTER (WHERE score >= 9),
                count(*) FILTER (WHERE score <= 6)
            FROM (
                SELECT DISTINCT ON (customer_id, contact) customer_id, score
                FROM health_npsresponse
                WHERE responded_at >= %(t180)s AND responded_at < %(end)s
                  AND customer_id IN ({scorable})
                ORDER BY customer_id, contact, responded_at DESC
            ) latest
            GROUP BY customer_id
        """,  # noqa: S608
        "opportunities": f"""
            SELECT customer_id,
                count(DISTINCT product) FILTER (
                    WHERE stage = 'won' AND closed_on <= %(d)s),
                count(*) FILTER (
                    WHERE stage = 'won' AND kind = 'renewal' AND closed_on <= %(d)s),
                count(*) FILTER (
                    WHERE stage = 'lost' AND closed_on <= %(d)s
                      AND closed_on > %(d365)s),
                count(*) FILTER (WHERE closed_on IS NULL OR closed_on > %(d)s)
            FROM health_opportunity
            WHERE created_on <= %(d)s AND customer_id IN ({scorable})
            GROUP BY customer_id
        """,  # noqa: S608
        "interactions": f"""
            SELECT customer_id, max(occurred_at),
                avg(sentiment) FILTER (WHERE occurred_at >= %(t90)s)
            FROM health_interaction
            WHERE occurred_at < %(end)s AND customer_id IN ({scorable})
            GROUP BY customer_id
        """,  # noqa: S608
    }

    model_id = next(iter(active_models().values())).pk
    started = time.perf_counter()
    with connection.cursor() as cursor:
        rows = {name: _fetch_all(cursor, sql, p) for name, sql in reads.items()}
    read_seconds = time.perf_counter() - started

    text = breakdown.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    n = rows["customers"]
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS benchmark_snapshot_floor")
        cursor.execute(
            "CREATE TABLE benchmark_snapshot_floor "
            "(LIKE health_scoresnapshot INCLUDING DEFAULTS INCLUDING INDEXES)"
        )
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        sql = (
            "COPY benchmark_snapshot_floor (id, customer_id, model_id, as_of, "
            "score, band, coverage, breakdown, computed_at, overridden_band) "
            "FROM STDIN"
        )
        now = datetime.now(UTC).isoformat()
        with cursor.copy(sql) as copy:
            block = []
            for i in range(1, n + 1):
                block.append(
                    f"{i}\t{i}\t{model_id}\t{as_of}\t55.5\tneutral\t1.0\t"
                    f"{text}\t{now}\t\n"
                )
                if len(block) == 2000:
                    copy.write("".join(block))
                    block = []
            copy.write("".join(block))
    write_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE benchmark_snapshot_floor")

    return {
        "seconds": read_seconds + write_seconds,
        "read_seconds": read_seconds,
        "copy_seconds": write_seconds,
        "rows_read": rows,
    }


def naive_score(as_of: date, sample: int) -> dict:
    """The ORM, one customer at a time, as a first version would: a query
    per input per customer and an update_or_create. Timed on an even sample
    of the scorable customers and extrapolated to all of them."""
    model = next(m for m in active_models().values() if m.segment == "")
    spec = load_model_spec(model)
    ids = list(scorable_customers(as_of).order_by("pk").values_list("pk", flat=True))
    step = max(1, len(ids) // sample)
    chosen = ids[::step][:sample]
    end = end_of_day(as_of)
    start_90 = end - timedelta(days=90)
    start_180 = end - timedelta(days=180)

    started = time.perf_counter()
    for customer_id in chosen:
        customer = Customer.objects.get(pk=customer_id)
        readings = {}
        for key in spec.imported_metrics:
            reading = (
                MetricReading.objects.filter(
                    customer=customer, metric__key=key, observed_on__lte=as_of
                )
                .order_by("-observed_on")
                .first()
            )
            if reading is not None:
                readings[key] = (reading.value, reading.observed_on)
        tickets = list(customer.tickets.filter(opened_at__lt=end))
        interactions = list(customer.interactions.filter(occurred_at__lt=end))
        activity = Activity(
            tickets=[(t.opened_at, t.closed_at, t.escalated) for t in tickets],
            any_ticket=bool(tickets),
            nps=[
                (r.contact, r.score, r.responded_at)
                for r in customer.nps_responses.filter(
                    responded_at__gte=start_180, responded_at__lt=end
                )
            ],
            opportunities=[
                (o.product, o.kind, o.stage, o.created_on, o.closed_on)
                for o in customer.opportunities.filter(created_on__lte=as_of)
            ],
            interactions=[
                (i.occurred_at, i.sentiment)
                for i in interactions
                if i.occurred_at >= start_90
            ],
            last_interaction_at=max(
                (i.occurred_at for i in interactions), default=None
            ),
        )
        activity.any_opportunity = bool(activity.opportunities)
        values = derive_metrics(as_of, activity, spec.derived_metrics)
        result = score_customer(
            spec,
            as_of,
            readings,
            values,
            tenure_days=tenure_on(customer.customer_since, as_of),
        )
        ScoreSnapshot.objects.update_or_create(
            customer=customer,
            model=model,
            as_of=as_of,
            defaults={
                "score": result.score,
                "band": result.band,
                "coverage": result.coverage,
                "breakdown": result.breakdown(),
            },
        )
    seconds = time.perf_counter() - started
    return {
        "sample": len(chosen),
        "sample_seconds": seconds,
        "seconds": seconds / len(chosen) * len(ids) if chosen else 0.0,
    }


@contextmanager
def _workers(count: int, say: Say):
    """``count`` RQ worker processes on the configured queue, up and
    registered before the block starts; stopped (by their ids) after it."""
    from django_rq import get_queue
    from rq import Worker

    queue = get_queue(settings.RQ_QUEUE_NAME)
    before = {w.name for w in Worker.all(queue=queue)}
    # A worker logs a line or two per job: to a file, never to a pipe that
    # nobody reads, which fills after a few hundred jobs and stops the worker.
    with tempfile.TemporaryFile(prefix="wb-bench-rqworker-") as log:
        procs = [
            subprocess.Popen(
                [sys.executable, "manage.py", "rqworker", settings.RQ_QUEUE_NAME],
                cwd=PROJECT,
                env=_child_env(DATABASE_URL=_database_url()),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for _ in range(count)
        ]
        try:
            deadline = time.monotonic() + WORKER_START_TIMEOUT
            while len({w.name for w in Worker.all(queue=queue)} - before) < count:
                if time.monotonic() > deadline or any(
                    p.poll() is not None for p in procs
                ):
                    raise RuntimeError("RQ workers did not start")
                time.sleep(0.2)
            yield
        finally:
            for proc in procs:
                if proc.poll() is None:
                    # SIGTERM: a warm shutdown, the worker leaves Redis clean.
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            say(f"  stopped {count} worker(s)")


def rq_available() -> str | None:
    """Why the RQ measurements cannot run, or None when they can."""
    if not settings.REDIS_URL:
        return "REDIS_URL is not set"
    from django_rq import get_queue

    queue = get_queue(settings.RQ_QUEUE_NAME)
    try:
        waiting = len(queue)
    except Exception as exc:  # noqa: BLE001 - any Redis trouble means "skip"
        return f"Redis is not reachable: {exc}"
    if waiting:
        # Someone else's jobs would run on our workers against our database.
        return f"the RQ queue {queue.name!r} already holds {waiting} jobs"
    return None


def run_with_workers(count: int, start: Callable, say: Say) -> float:
    """Seconds from queueing a run to its end, on ``count`` fresh workers."""
    with _workers(count, say), override_settings(JOBS_INLINE=False):
        started = time.perf_counter()
        run = start()
        try:
            deadline = time.monotonic() + RUN_TIMEOUT
            while True:
                run.refresh_from_db()
                if run.status not in ("queued", "running"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"run {run.pk} did not finish in time")
                time.sleep(0.05)
        except BaseException:
            _drop_queued_chunks(run.pk)
            raise
        seconds = time.perf_counter() - started
    if run.status != "succeeded":
        raise RuntimeError(f"run {run.pk} ended {run.status}: {run.error}")
    return seconds


def _drop_queued_chunks(run_id: int) -> None:
    """Remove this run's chunks still waiting, so that a stopped benchmark
    leaves nothing for the next worker on the queue."""
    from django_rq import get_queue

    for job in get_queue(settings.RQ_QUEUE_NAME).get_jobs():
        if job.kwargs.get("run_id") == run_id:
            job.delete()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def measure_pages(as_of: date, say: Say, requests: int = PAGE_REQUESTS) -> dict:
    """Server time and queries of each workbench page that exists, as a
    manager sees it; pages whose URL name is missing are reported skipped."""
    manager = User.objects.get(username="bench-manager")
    customer_ids = list(
        scorable_customers(as_of).order_by("pk").values_list("pk", flat=True)
    )
    step = max(1, len(customer_ids) // requests)
    sample = customer_ids[::step][:requests] or [0]
    segment = "mid-market"
    pages = {
        "customer_list": ("customer-list", None, ""),
        "customer_list_filtered": (
            "customer-list",
            None,
            f"?band=unhealthy&segment={segment}",
        ),
        "customer_list_sorted": ("customer-list", None, "?sort=-arr"),
        "customer_list_sorted_by_change": ("customer-list", None, "?sort=delta"),
        "customer_detail": ("customer-detail", "pk", ""),
        "dashboard": ("dashboard", None, ""),
    }

    results: dict = {}
    skipped = []
    with override_settings(DEBUG=False):
        client = Client(SERVER_NAME="localhost")
        client.force_login(manager)
        for name, (url_name, arg, query) in pages.items():
            try:
                urls = [
                    reverse(url_name, kwargs={arg: pk}) + query if arg else None
                    for pk in sample
                ]
                if not arg:
                    urls = [reverse(url_name) + query] * requests
            except NoReverseMatch:
                skipped.append(name)
                say(f"  page {name}: URL name {url_name!r} does not exist, skipped")
                continue

            client.get(urls[0])  # warm-up: template loading, first queries
            times, counts, statuses = [], [], set()
            deadline = time.monotonic() + PAGE_BUDGET_SECONDS
            for i in range(requests):
                # A page far off its target has made its point by then.
                if i >= PAGE_MIN_REQUESTS and time.monotonic() > deadline:
                    break
                url = urls[i % len(urls)]
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    response = client.get(url)
                    times.append((time.perf_counter() - started) * 1000)
                counts.append(len(queries))
                statuses.add(response.status_code)
            results[name] = {
                "url": urls[0],
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(_percentile(times, 0.95), 2),
                "requests": len(times),
                "queries": max(counts),
                "queries_min": min(counts),
                "status": sorted(statuses),
            }
            say(
                f"  page {name}: p50 {results[name]['p50_ms']} ms, p95 "
                f"{results[name]['p95_ms']} ms, {max(counts)} queries"
            )
    if skipped:
        results["skipped"] = skipped
    return results


def _write_readings_file(path: Path, as_of: date, rows: int) -> int:
    """``rows`` new readings of the imported metrics: customer after customer,
    on days between the book's weekly readings, so none is a duplicate."""
    external_ids = list(
        Customer.objects.order_by("pk").values_list("external_id", flat=True)
    )
    n = len(external_ids)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer", "metric", "value", "observed_on"])
        for i in range(rows):
            k = i // n
            metric = IMPORTED_METRICS[k % 3]
            day = as_of - timedelta(days=3 + 7 * (k // 3))
            value = 17 if metric == "login_days_30d" else round((i % 97) / 100, 2)
            writer.writerow([external_ids[i % n], metric, value, day.isoformat()])
    return rows


def measure_import(as_of: date, rows: int, say: Say) -> dict:
    """``import_data readings`` of a file of ``rows`` new readings against
    COPY of the same file into a bare table. The imported rows are deleted
    afterwards, so the book stays as generated."""
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as folder:
        path = Path(folder) / "readings.csv"
        _write_readings_file(path, as_of, rows)
        size_mb = path.stat().st_size / 2**20

        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS benchmark_readings_copy")
            cursor.execute(
                "CREATE TABLE benchmark_readings_copy (customer text, "
                "metric text, value double precision, observed_on date)"
            )
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            sql = "COPY benchmark_readings_copy FROM STDIN (FORMAT csv, HEADER true)"
            with cursor.copy(sql) as copy, path.open("rb") as handle:
                while block := handle.read(1 << 20):
                    copy.write(block)
        copy_seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE benchmark_readings_copy")

        # The re-score the import asks for is score all again (measured
        # above); on RQ it would only be queued. Recorded, not run.
        asked: list[int] = []
        before = ImportBatch.objects.order_by("-pk").values_list("pk", flat=True)
        last_batch = before.first() or 0
        with mock.patch.object(
            jobs, "request_rescore", lambda ids, as_of=None: asked.extend(ids)
        ):
            started = time.perf_counter()
            # What ``import_data readings FILE`` runs, without its progress
            # line on the terminal.
            importers.import_file(kind="readings", path=path)
            seconds = time.perf_counter() - started

    batch = ImportBatch.objects.filter(pk__gt=last_batch).order_by("pk").last()
    imported = batch.rows_new if batch else 0
    if batch:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM health_metricreading WHERE batch_id = %s", [batch.pk]
            )
        batch.delete()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE health_metricreading")
    say(f"  imported {imported:,} rows ({size_mb:.0f} MB file)")
    return {
        "rows": rows,
        "rows_new": imported,
        "seconds": seconds,
        "copy_floor_seconds": copy_seconds,
        "ratio_to_floor": seconds / copy_seconds if copy_seconds else None,
        "file_mb": round(size_mb, 1),
        "rescore_customers_asked": len(set(asked)),
    }


# --- The run -------------------------------------------------------------------


def _machine() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    memory_gb = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gb = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "postgresql": server,
        "platform": platform.platform(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def _ratio(value: float | None, reference: float | None) -> float | None:
    if not value or not reference:
        return None
    return round(value / reference, 2)


def run_benchmark(
    customers: int,
    *,
    seed: int = DEFAULT_SEED,
    import_rows: int = IMPORT_ROWS,
    naive_sample: int = NAIVE_SAMPLE,
    page_requests: int = PAGE_REQUESTS,
    say: Say = _quiet,
) -> dict:
    """Generate or reuse the book, measure everything, return the figures."""
    check_database()
    began = time.perf_counter()
    machine = _machine()
    book = ensure_book(customers, seed, say)
    as_of = book.as_of
    result: dict = {
        "customers": customers,
        "seed": seed,
        "as_of": as_of.isoformat(),
        "book": {
            "reused": book.reused,
            "generated_seconds": round(book.generated_seconds, 1),
            **book.counts,
        },
        "machine": machine,
        "targets": {},
    }
    reset_results()
    rq_problem = rq_available()

    # Once, on two workers when there is Redis (as deployed), else inline:
    # a second backfill would double the longest step of the run.
    dates = month_ends_before(as_of)
    mode = "inline" if rq_problem else "2 RQ workers"
    say(f"Backfill of 12 month ends ({dates[0]} to {dates[-1]}), {mode}...")
    if rq_problem:
        started = time.perf_counter()
        with override_settings(JOBS_INLINE=True):
            jobs.start_backfill(dates=dates)
        seconds = time.perf_counter() - started
    else:
        seconds = run_with_workers(2, lambda: jobs.start_backfill(dates=dates), say)
    result["backfill_12"] = {"seconds": seconds, "mode": mode, "dates": len(dates)}
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE health_scoresnapshot, health_customer")
    say(f"  {seconds:.1f}s")

    say(f"Score all as of {as_of}, inline in a fresh process, no announcing...")
    quiet = score_all_inline(as_of, announce=False)
    say(f"  {quiet}")
    say(f"Score all as of {as_of}, inline in a fresh process...")
    inline = score_all_inline(as_of)
    say(f"  {inline}")
    breakdown = (
        ScoreSnapshot.objects.filter(as_of=as_of, score__isnull=False)
        .values_list("breakdown", flat=True)
        .first()
    )
    say("Floor: plain SQL reads of the same inputs + COPY of the snapshots...")
    floor = score_all_floor(as_of, json.dumps(breakdown or {}))
    say(f"  {floor}")
    say(f"Naive path on a sample of {naive_sample}...")
    naive = naive_score(as_of, naive_sample)
    say(f"  {naive}")
    result["score_all"] = {
        "seconds": inline["seconds"],
        "scored": inline["scored"],
        "customers_per_second": round(inline["scored"] / inline["seconds"], 1),
        "floor_seconds": floor["seconds"],
        "floor_read_seconds": floor["read_seconds"],
        "floor_copy_seconds": floor["copy_seconds"],
        "ratio_to_floor": _ratio(inline["seconds"], floor["seconds"]),
        # The same run with band changes not announced: the playbooks'
        # reaction to them (a dozen queries per change) left out.
        "scoring_only_seconds": quiet["seconds"],
        "scoring_only_ratio_to_floor": _ratio(quiet["seconds"], floor["seconds"]),
        "band_changes": band_changes(as_of),
        "naive_seconds": naive["seconds"],
        "naive_sample": naive["sample"],
        "speedup_vs_naive": _ratio(naive["seconds"], inline["seconds"]),
        "peak_rss_mb": round(inline["peak_rss_mb"], 1),
        "start_rss_mb": round(inline["start_rss_mb"], 1),
        "chunk_size": settings.SCORE_CHUNK_SIZE,
    }

    if rq_problem is None:
        say("Score all with 1 and 2 RQ workers...")
        figures = {}
        for count in (1, 2):
            delete_snapshots_on(as_of)
            figures[count] = run_with_workers(
                count, lambda: jobs.start_score_all(as_of=as_of), say
            )
            say(f"  {count} worker(s): {figures[count]:.2f}s")
        result["score_all_rq"] = {
            "workers_1_seconds": figures[1],
            "workers_2_seconds": figures[2],
            "speedup_2_vs_1": _ratio(figures[1], figures[2]),
        }
    else:
        say(f"RQ measurements skipped: {rq_problem}")
        result["score_all_rq"] = {
            "workers_1_seconds": None,
            "workers_2_seconds": None,
            "speedup_2_vs_1": None,
            "skipped": rq_problem,
        }

    # Every score run above rewrote each customer's current score; pages are
    # read between nightly runs, after autovacuum has cleared the old row
    # versions (it starts once a fifth of a table has changed).
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE health_customer")
    say("Pages, as a manager...")
    result["pages"] = measure_pages(as_of, say, page_requests)

    say(f"Import of {import_rows:,} readings...")
    result["import_readings"] = measure_import(as_of, import_rows, say)

    machine["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    result["total_seconds"] = round(time.perf_counter() - began, 1)
    result["targets"] = check_targets(result)
    return result


def check_targets(result: dict) -> dict:
    score_all = result["score_all"]
    pages = [v for k, v in result["pages"].items() if k != "skipped"]
    worst_p95 = max((p["p95_ms"] for p in pages), default=None)
    checks = {
        "score_all_within_3x_floor": (
            score_all["ratio_to_floor"],
            TARGETS["score_all_ratio_to_floor_max"],
            "max",
        ),
        "score_all_50x_faster_than_naive": (
            score_all["speedup_vs_naive"],
            TARGETS["score_all_speedup_vs_naive_min"],
            "min",
        ),
        "rq_2_workers_1_6x_faster_than_1": (
            result["score_all_rq"]["speedup_2_vs_1"],
            TARGETS["rq_speedup_2_vs_1_min"],
            "min",
        ),
        "import_within_4x_copy": (
            result["import_readings"]["ratio_to_floor"],
            TARGETS["import_ratio_to_floor_max"],
            "max",
        ),
        "page_p95_under_150ms": (worst_p95, TARGETS["page_p95_ms_max"], "max"),
        "peak_rss_under_500mb": (
            score_all["peak_rss_mb"],
            TARGETS["peak_rss_mb_max"],
            "max",
        ),
    }
    return {
        name: {
            "value": value,
            "target": target,
            "met": None
            if value is None
            else (value <= target if kind == "max" else value >= target),
        }
        for name, (value, target, kind) in checks.items()
    }


def summary_lines(result: dict) -> list[str]:
    """The figures as the README table shows them."""
    s, rq, imp = result["score_all"], result["score_all_rq"], result["import_readings"]

    def sec(value):
        return "-" if value is None else f"{value:.1f} s"

    lines = [
        f"N = {result['customers']:,} customers (as of {result['as_of']})",
        "| measure | time | reference | ratio |",
        "|---|---|---|---|",
        f"| score all, inline | {sec(s['seconds'])} | floor {sec(s['floor_seconds'])}"
        f" | {s['ratio_to_floor']}x floor |",
        f"| score all, inline, band changes not announced | "
        f"{sec(s['scoring_only_seconds'])} | floor {sec(s['floor_seconds'])} | "
        f"{s['scoring_only_ratio_to_floor']}x floor |",
        f"| score all, naive ORM (extrapolated) | {sec(s['naive_seconds'])} | "
        f"score all {sec(s['seconds'])} | {s['speedup_vs_naive']}x slower |",
        f"| score all, 1 RQ worker | {sec(rq['workers_1_seconds'])} | | |",
        f"| score all, 2 RQ workers | {sec(rq['workers_2_seconds'])} | 1 worker | "
        f"{rq['speedup_2_vs_1']}x faster |",
        f"| backfill 12 month ends, {result['backfill_12']['mode']} | "
        f"{sec(result['backfill_12']['seconds'])} | | |",
    ]
    lines += [
        f"| import {imp['rows']:,} readings | {sec(imp['seconds'])} | COPY "
        f"{sec(imp['copy_floor_seconds'])} | {imp['ratio_to_floor']:.2f}x COPY |",
        f"| peak RSS of score all | {s['peak_rss_mb']} MB | | |",
        "",
        "| page | p50 | p95 | queries |",
        "|---|---|---|---|",
    ]
    for name, page in result["pages"].items():
        if name == "skipped":
            continue
        queries = page["queries"]
        if page["queries_min"] != queries:
            queries = f"{page['queries_min']}-{queries}"
        lines.append(
            f"| {name} | {page['p50_ms']} ms | {page['p95_ms']} ms | {queries} |"
        )
    if result["pages"].get("skipped"):
        lines.append(f"(pages skipped, URL name missing: {result['pages']['skipped']})")
    lines.append("")
    for name, check in result["targets"].items():
        met = {True: "met", False: "MISSED", None: "not measured"}[check["met"]]
        lines.append(f"target {name}: {met} ({check['value']} vs {check['target']})")
    return lines
