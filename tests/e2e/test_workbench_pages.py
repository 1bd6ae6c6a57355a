"""A CSM's morning and a manager's, in a real browser: log in, open the
book, open a customer, log an interaction and see the score move; open the
dashboard. Every page is saved as a screenshot."""

import re
from datetime import timedelta

import pytest

from health import services
from health.jobs import today
from health.models import Customer, Interaction, ScoreModel, ScoreSnapshot
from health.scoring import band_for
from tests.factories import customer_with_inputs

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PASSWORD = "test-pass-123"  # noqa: S105 - the cast's password in conftest


@pytest.fixture
def book(csm, other_csm):
    """Eight customers with inputs, owned by the CSM and another, scored as
    of today and on earlier days, so that changes and charts have history."""
    day = today()
    customers = []
    for n in range(8):
        customer = customer_with_inputs(n + 1, day, variant=n)
        customer.owner = csm if n < 5 else other_csm
        customer.renewal_date = day + timedelta(days=30 * (n + 1))
        customer.save()
        customers.append(customer)
    ids = [c.pk for c in customers]
    for back in (0, 30):
        services.score_customers(
            customer_ids=ids, as_of=day - timedelta(days=back), announce=False
        )

    # A year of month-end history, made up, for the charts.
    model = ScoreModel.objects.get(status="active", segment="")
    month_end = day.replace(day=1) - timedelta(days=1)
    history = []
    for month in range(12):
        for n, customer in enumerate(customers):
            score = (17 * n + 9 * month) % 95 + 3.0
            history.append(
                ScoreSnapshot(
                    customer=customer,
                    model=model,
                    as_of=month_end,
                    score=score,
                    band=band_for(score),
                    coverage=0.9,
                )
            )
        month_end = month_end.replace(day=1) - timedelta(days=1)
    ScoreSnapshot.objects.bulk_create(history, ignore_conflicts=True)
    return customers


def log_in(page, user) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_csm_logs_an_interaction_and_sees_the_score_move(csm, book, page, screenshot):
    # Variant 2 has no interaction yet: the one logged below brings in the
    # interactions component, which replaces support and moves the score.
    customer = Customer.objects.get(pk=book[2].pk)
    before = ScoreSnapshot.objects.get(customer=customer, as_of=today()).score

    page.goto("/login/")
    screenshot("01-login")
    log_in(page, csm)

    page.wait_for_url(re.compile(r"/book/$"))
    rows = page.locator("main table tbody tr")
    assert rows.count() == 5
    screenshot("02-my-book")

    page.get_by_role("link", name=customer.name).click()
    page.wait_for_url(re.compile(rf"/customers/{customer.pk}/$"))
    score = page.get_by_test_id("score")
    assert score.inner_text() == f"{before:.1f}"
    assert page.locator("svg polyline").count() >= 1
    screenshot("03-customer-before")

    form = page.get_by_role("form", name="Log an interaction")
    form.get_by_label("Kind").select_option("qbr")
    form.get_by_label("Date").fill(today().isoformat())
    form.get_by_label("Positive").check()
    form.get_by_label("Summary").fill("QBR went well; renewal on track")
    with page.expect_navigation():
        form.get_by_role("button", name="Log interaction").click()

    log = page.get_by_role("table", name="Interaction log")
    assert "QBR went well; renewal on track" in log.inner_text()
    after = ScoreSnapshot.objects.get(customer=customer, as_of=today()).score
    assert after != before
    assert score.inner_text() == f"{after:.1f}"
    assert Interaction.objects.filter(customer=customer, csm=csm).count() == 1
    screenshot("04-customer-after-interaction")

    page.get_by_role("link", name="All customers").click()
    page.wait_for_url(re.compile(r"/customers/$"))
    assert page.locator("main table tbody tr").count() == 8
    screenshot("05-all-customers")

    page.get_by_role("link", name="Focus lists").click()
    page.wait_for_url(re.compile(r"/focus/needs-attention/$"))
    screenshot("06-focus-needs-attention")
    page.get_by_role("link", name="Cross-sell").click()
    page.wait_for_url(re.compile(r"/focus/cross-sell/$"))
    screenshot("07-focus-cross-sell")

    # The form works from the keyboard alone: a pulse, typed and submitted.
    page.goto(f"/customers/{customer.pk}/")
    page.get_by_role("form", name="Record a pulse").get_by_label("4").focus()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.type("Champion is engaged")
    page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "4/5" in page.locator("#pulse").inner_text()


def test_manager_opens_the_dashboard(manager, book, page, screenshot):
    log_in(page, manager)

    page.wait_for_url(re.compile(r"/dashboard/$"))
    assert page.get_by_role("heading", name="Band mix over the last 12 months")
    assert page.locator("svg rect").count() > 5
    books = page.get_by_role("heading", name="Books by CSM").locator("..")
    assert "Casey Smith" in books.inner_text()
    screenshot("08-dashboard")

    page.goto(f"/customers/{book[0].pk}/")
    page.get_by_role("combobox", name="Owner").select_option(label="Olive Owens")
    with page.expect_navigation():
        page.get_by_role("button", name="Reassign").click()
    assert "now belongs to Olive Owens" in page.locator(".messages").inner_text()
    screenshot("09-customer-as-manager")
