"""The benchmark: it refuses SQLite and foreign data, and a small run on
PostgreSQL reports every figure the README table and the JSON promise."""

import json
import os

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from health import benchmark
from health.models import Customer, MetricReading, ScoreSnapshot

N = 300


def _needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip(
            "the benchmark runs on PostgreSQL only (COPY, generate_series); "
            "set DATABASE_URL=postgres://... to run this test"
        )


def test_it_refuses_sqlite_with_a_clear_message(db):
    if connection.vendor != "sqlite":
        pytest.skip("checks the refusal on SQLite; this run is on PostgreSQL")

    with pytest.raises(CommandError, match="PostgreSQL only"):
        call_command("benchmark", customers=10)

    assert not Customer.objects.exists()


def test_it_refuses_a_database_holding_customers_it_did_not_make(db):
    _needs_postgresql()
    Customer.objects.create(name="Real", external_id="CRM-1")

    with pytest.raises(benchmark.BenchmarkRefused, match="did not generate"):
        benchmark.ensure_book(10)

    assert list(Customer.objects.values_list("external_id", flat=True)) == ["CRM-1"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_small_run_reports_every_figure(tmp_path):
    _needs_postgresql()
    out = tmp_path / "bench.json"

    call_command(
        "benchmark",
        customers=N,
        json=out,
        import_rows=3000,
        naive_sample=30,
        page_requests=5,
        stdout=open(os.devnull, "w"),  # noqa: SIM115 - closed with the process
    )

    figures = json.loads(out.read_text())
    assert figures["customers"] == N
    book = figures["book"]
    assert book["customers"] == N
    # Three metrics weekly for a year, less the few customers with none.
    assert 0.9 * N * 156 < book["readings"] <= N * 156
    assert min(book[k] for k in ("tickets", "nps_responses", "interactions")) > N

    score_all = figures["score_all"]
    for key in (
        "seconds",
        "floor_seconds",
        "ratio_to_floor",
        "naive_seconds",
        "speedup_vs_naive",
        "peak_rss_mb",
    ):
        assert score_all[key] > 0, key
    assert 0.9 * N < score_all["scored"] <= N
    assert score_all["naive_seconds"] > score_all["seconds"]
    assert 50 < score_all["peak_rss_mb"] < 500

    rq = figures["score_all_rq"]
    assert set(rq) >= {"workers_1_seconds", "workers_2_seconds", "speedup_2_vs_1"}
    if os.environ.get("REDIS_URL"):
        assert rq["workers_1_seconds"] > 0 and rq["workers_2_seconds"] > 0
    else:
        assert "REDIS_URL" in rq["skipped"]

    assert figures["backfill_12"]["seconds"] > 0

    imported = figures["import_readings"]
    assert imported["rows"] == imported["rows_new"] == 3000
    assert imported["seconds"] > 0 and imported["copy_floor_seconds"] > 0
    assert imported["ratio_to_floor"] > 1

    pages = figures["pages"]
    assert {"customer_list", "customer_detail", "dashboard"} <= set(pages)
    for name, page in pages.items():
        if name == "skipped":
            continue
        assert page["status"] == [200], name
        assert 0 < page["p50_ms"] <= page["p95_ms"], name
        assert page["queries"] > 0, name

    assert set(figures["targets"]) == {
        "score_all_within_3x_floor",
        "score_all_50x_faster_than_naive",
        "rq_2_workers_1_6x_faster_than_1",
        "import_within_4x_copy",
        "page_p95_under_150ms",
        "peak_rss_under_500mb",
    }

    # The import's rows are gone again and the book is reused as it is.
    assert MetricReading.objects.filter(batch__isnull=False).count() == 0
    assert ScoreSnapshot.objects.filter(as_of=figures["as_of"]).count() > 0
    again = benchmark.ensure_book(N)
    assert again.reused
    assert again.counts == {k: v for k, v in book.items() if k in again.counts}
