"""The list pages: My book, All customers, the focus lists and the managers'
dashboard. What each shows, in which order, and what it costs."""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from health.models import Customer, Interaction, Opportunity, ScoreModel, ScoreSnapshot
from tests.factories import at

TODAY = date(2026, 3, 31)


def scored(
    name: str,
    history: dict[int, float | None],
    *,
    owner=None,
    arr: int = 10_000,
    segment: str = "SMB",
    **extra,
) -> Customer:
    """A customer with a snapshot ``days`` days before TODAY for each entry
    of ``history`` (days: score, None for unscored), banded by the default
    limits."""
    model = ScoreModel.objects.get(status="active", segment="")
    customer = Customer.objects.create(
        name=name,
        external_id=name,
        owner=owner,
        arr=arr,
        segment=segment,
        **extra,
    )
    for days, score in history.items():
        ScoreSnapshot.objects.create(
            customer=customer,
            model=model,
            as_of=TODAY - timedelta(days=days),
            score=score,
            band=band_of(score),
            coverage=1 if score is not None else 0.2,
        )
    return customer


def band_of(score: float | None) -> str:
    if score is None:
        return "unscored"
    for lower, band in [
        (80, "very_healthy"),
        (60, "healthy"),
        (40, "neutral"),
        (20, "unhealthy"),
    ]:
        if score >= lower:
            return band
    return "very_unhealthy"


def names(response) -> list[str]:
    return [c.name for c in response.context["page"]]


# --- My book -----------------------------------------------------------------


def test_my_book_lists_own_customers_least_healthy_first(client, csm, other_csm):
    scored("Fine", {0: 72.5}, owner=csm)
    scored("Sick", {0: 12.0}, owner=csm)
    scored("Never scored", {}, owner=csm)
    scored("Someone else's", {0: 5.0}, owner=other_csm)
    client.force_login(csm)

    response = client.get(reverse("my-book"))

    assert response.status_code == 200
    assert names(response) == ["Sick", "Fine", "Never scored"]


def test_my_book_shows_every_column_of_a_row(client, csm):
    customer = scored(
        "Acme",
        {0: 48.0, 30: 60.5},
        owner=csm,
        arr=125_000,
        renewal_date=date(2026, 9, 1),
    )
    Interaction.objects.create(
        customer=customer, kind="call", occurred_at=at(date(2026, 3, 20))
    )
    client.force_login(csm)

    response = client.get(reverse("my-book"))

    row = response.context["page"][0]
    assert (row.score, row.band, row.coverage) == (48.0, "neutral", 1)
    assert round(row.delta, 1) == -12.5
    html = response.content.decode()
    for text in ["125,000", "48.0", "Neutral", "-12.5", "100%", "2026-03-20"]:
        assert text in html, text
    assert "2026-09-01" in html


def test_login_form_leads_a_csm_to_their_book(client, csm):
    form = client.get(reverse("login")).content.decode()
    assert f'name="next" value="{reverse("home")}"' in form

    response = client.post(
        reverse("login"),
        {"username": "csm", "password": "test-pass-123", "next": reverse("home")},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == reverse("my-book")


def test_home_sends_managers_to_the_dashboard(client, manager):
    client.force_login(manager)

    assert client.get(reverse("home")).url == reverse("dashboard")


# --- All customers -----------------------------------------------------------


@pytest.fixture
def book(csm, other_csm):
    """Five customers across bands, owners and segments."""
    return {
        "a": scored("Alpha", {0: 85.0, 30: 80.0}, owner=csm, segment="SMB"),
        "b": scored("Bravo", {0: 45.0, 30: 60.0}, owner=csm, segment="Enterprise"),
        "c": scored("Charlie", {0: 15.0, 30: 25.0}, owner=other_csm, arr=90_000),
        "d": scored("Delta", {0: None}, owner=other_csm, segment="Enterprise"),
        "e": scored("Echo", {0: 55.0, 30: 64.9}, segment="SMB"),
        "churned": scored("Gone", {0: 10.0}, churned_on=date(2026, 1, 1)),
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["Charlie", "Bravo", "Echo", "Alpha", "Delta"]),
        ({"band": "neutral"}, ["Bravo", "Echo"]),
        ({"band": "unscored"}, ["Delta"]),
        ({"segment": "Enterprise"}, ["Bravo", "Delta"]),
        ({"declined": "1"}, ["Charlie", "Bravo"]),
        ({"owner": "none"}, ["Echo"]),
        ({"q": "LPH"}, ["Alpha"]),
        ({"sort": "-score"}, ["Alpha", "Echo", "Bravo", "Charlie", "Delta"]),
        ({"sort": "delta"}, ["Bravo", "Charlie", "Echo", "Alpha", "Delta"]),
        ({"sort": "-arr"}, ["Charlie", "Alpha", "Bravo", "Delta", "Echo"]),
        ({"sort": "name"}, ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]),
        ({"sort": "nonsense"}, ["Charlie", "Bravo", "Echo", "Alpha", "Delta"]),
    ],
)
def test_customer_list_filters_searches_and_sorts(
    client, manager, book, params, expected
):
    client.force_login(manager)

    response = client.get(reverse("customer-list"), params)

    assert names(response) == expected


def test_customer_list_filters_by_owner(client, manager, book, csm):
    client.force_login(manager)

    response = client.get(reverse("customer-list"), {"owner": csm.pk})

    assert names(response) == ["Bravo", "Alpha"]


def test_decline_of_exactly_ten_points_counts(client, manager):
    # 60.1 - 50.1 is 9.999999999999993 in floats.
    scored("Edge", {0: 50.1, 30: 60.1})
    scored("Less", {0: 50.2, 30: 60.1})
    client.force_login(manager)

    response = client.get(reverse("customer-list"), {"declined": "1"})

    assert names(response) == ["Edge"]


def test_change_needs_a_baseline_at_most_a_week_older_than_30_days(client, manager):
    scored("Recent baseline", {0: 40.0, 37: 60.0})
    scored("Stale baseline", {0: 40.0, 38: 60.0})
    scored("Unscored baseline", {0: 40.0, 30: None})
    client.force_login(manager)

    response = client.get(reverse("customer-list"), {"sort": "name"})

    deltas = {c.name: c.delta for c in response.context["page"]}
    assert deltas == {
        "Recent baseline": -20.0,
        "Stale baseline": None,
        "Unscored baseline": None,
    }


def test_customer_list_pages_keep_the_filters(client, manager):
    for n in range(12):
        scored(f"Customer {n:02d}", {0: 30.0 + n})
    client.force_login(manager)

    response = client.get(
        reverse("customer-list"), {"per_page": 10, "sort": "name", "band": "unhealthy"}
    )

    assert len(response.context["page"]) == 10
    assert response.context["page"].paginator.count == 10  # 30.0 to 39.0
    response = client.get(reverse("customer-list"), {"per_page": 10, "sort": "name"})
    assert "page=2" in response.content.decode()
    assert "sort=name" in response.content.decode()
    second = client.get(reverse("customer-list"), {"per_page": 10, "page": 2})
    assert len(second.context["page"]) == 2


def test_list_pages_ignore_scores_of_draft_models(client, manager):
    customer = scored("Acme", {0: 70.0})
    draft = ScoreModel.objects.create(name="Draft", version=9, status="draft")
    ScoreSnapshot.objects.create(
        customer=customer,
        model=draft,
        as_of=TODAY,
        score=5,
        band="very_unhealthy",
        coverage=1,
    )
    client.force_login(manager)

    response = client.get(reverse("customer-list"))

    assert response.context["page"][0].score == 70.0


# --- Focus lists -------------------------------------------------------------


def test_needs_attention_lists_the_two_lowest_bands_by_arr(client, csm):
    scored("Small risk", {0: 10.0}, arr=5_000)
    scored("Big risk", {0: 30.0}, arr=500_000)
    scored("Fine", {0: 70.0}, arr=900_000)
    client.force_login(csm)

    response = client.get(reverse("focus-list", args=["needs-attention"]))

    assert names(response) == ["Big risk", "Small risk"]


def test_untapped_lists_neutral_customers(client, csm):
    scored("Neutral", {0: 50.0})
    scored("Healthy", {0: 70.0})
    client.force_login(csm)

    response = client.get(reverse("focus-list", args=["untapped"]))

    assert names(response) == ["Neutral"]


def test_cross_sell_lists_healthy_customers_fewest_products_first(client, csm):
    many = scored("Many products", {0: 90.0})
    one = scored("One product", {0: 65.0})
    scored("None yet", {0: 70.0})
    scored("Unhealthy", {0: 10.0})
    for customer, products in [(many, ["A", "B", "C"]), (one, ["A"])]:
        for product in products:
            Opportunity.objects.create(
                customer=customer,
                external_id=f"{customer.name}-{product}",
                product=product,
                kind="new",
                stage="won",
                created_on=date(2025, 1, 1),
                closed_on=date(2025, 2, 1),
            )
    client.force_login(csm)

    response = client.get(reverse("focus-list", args=["cross-sell"]))

    assert names(response) == ["None yet", "One product", "Many products"]
    assert [c.products for c in response.context["page"]] == [0, 1, 3]


def test_likely_lost_needs_90_days_in_the_lowest_band_without_improving(client, csm):
    scored("Stuck", {0: 10.0, 45: 12.0, 90: 15.0})
    scored("Improving", {0: 18.0, 90: 12.0})
    scored("Left the band", {0: 10.0, 45: 30.0, 90: 10.0})
    scored("Only lately", {0: 10.0, 60: 10.0})
    client.force_login(csm)

    response = client.get(reverse("focus-list", args=["likely-lost"]))

    assert names(response) == ["Stuck"]


def test_unknown_focus_list_is_not_found(client, csm):
    client.force_login(csm)

    assert client.get(reverse("focus-list", args=["nope"])).status_code == 404


# --- Dashboard ---------------------------------------------------------------


def test_dashboard_shows_band_mix_movers_and_books(client, manager, csm, other_csm):
    scored("Falling", {0: 30.0, 30: 70.0}, owner=csm, arr=100_000)
    scored("Rising", {0: 75.0, 30: 50.0}, owner=csm, arr=50_000)
    scored("Flat", {0: 15.0, 30: 15.0}, owner=other_csm, arr=20_000)
    scored("New", {}, arr=1_000)
    client.force_login(manager)

    response = client.get(reverse("dashboard"))

    assert response.status_code == 200
    mix = {key: n for key, _, n in response.context["mix_now"]}
    assert mix == {
        "very_unhealthy": 1,
        "unhealthy": 1,
        "neutral": 0,
        "healthy": 1,
        "very_healthy": 0,
        "unscored": 1,
    }
    assert [c.name for c in response.context["down"]] == ["Falling"]
    assert [c.name for c in response.context["up"]] == ["Rising"]
    books = {row["user"].username: row for row in response.context["books"]}
    assert (books["csm"]["customers"], books["csm"]["unhealthy"]) == (2, 1)
    assert int(books["csm"]["arr"]) == 150_000
    assert books["other_csm"]["unhealthy"] == 1
    assert response.context["unowned"]["customers"] == 1
    assert "<svg" in response.content.decode()


def test_dashboard_band_mix_by_month_uses_the_fullest_day_near_each_month_end(
    client, manager
):
    model = ScoreModel.objects.get(status="active", segment="")
    month_end = date(2026, 2, 28)
    for n in range(3):
        customer = scored(f"C{n}", {0: 50.0})
        ScoreSnapshot.objects.create(
            customer=customer,
            model=model,
            as_of=month_end - timedelta(days=1),
            score=10,
            band="very_unhealthy",
            coverage=1,
        )
    # One customer re-scored alone on the month end itself.
    ScoreSnapshot.objects.create(
        customer=Customer.objects.get(name="C0"),
        model=model,
        as_of=month_end,
        score=90,
        band="very_healthy",
        coverage=1,
    )

    from health import selectors

    mix = selectors.band_mix_by_month([month_end, date(2025, 1, 31)])

    assert mix == {month_end: {"very_unhealthy": 3}}


def test_dashboard_with_no_scores_at_all(client, manager):
    client.force_login(manager)

    response = client.get(reverse("dashboard"))

    assert response.status_code == 200
    assert response.context["total"] == 0


# --- Cost --------------------------------------------------------------------


def _queries(client, url: str, params: dict) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code == 200
    rows = len(response.context["page"]) if "page" in response.context else None
    return len(captured), rows


@pytest.mark.parametrize(
    "url",
    [
        reverse("my-book"),
        reverse("customer-list"),
        reverse("focus-list", args=["needs-attention"]),
        reverse("focus-list", args=["cross-sell"]),
        reverse("focus-list", args=["likely-lost"]),
    ],
)
def test_list_pages_cost_the_same_queries_whatever_the_page_size(client, csm, url):
    for n in range(30):
        score = 10.0 if "needs" in url or "likely" in url else 85.0
        customer = scored(
            f"Customer {n:02d}", {0: score, 30: 12.0, 90: 14.0}, owner=csm
        )
        Interaction.objects.create(
            customer=customer, kind="call", occurred_at=at(TODAY)
        )
        Opportunity.objects.create(
            customer=customer,
            external_id=f"O{n}",
            product="A",
            kind="new",
            stage="won",
            created_on=TODAY,
            closed_on=TODAY,
        )
    client.force_login(csm)

    small, small_rows = _queries(client, url, {"per_page": 10})
    large, large_rows = _queries(client, url, {"per_page": 30})

    assert (small_rows, large_rows) == (10, 30)
    assert small == large
    assert large <= 12


def test_dashboard_costs_the_same_queries_whatever_the_book_size(client, manager, csm):
    client.force_login(manager)
    scored("First", {0: 10.0, 30: 50.0}, owner=csm)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("dashboard"))

    for n in range(25):
        scored(f"Customer {n:02d}", {0: 10.0 + n, 30: 50.0, 60: 40.0}, owner=csm)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("dashboard"))

    assert len(few) == len(many)
    assert len(many) <= 16


def test_pages_answer_head_like_get_without_a_body(client, csm):
    scored("Acme", {0: 50.0}, owner=csm)
    client.force_login(csm)

    for name in ["my-book", "customer-list"]:
        response = client.head(reverse(name))
        assert response.status_code == 200, name
        assert response.content == b"", name
