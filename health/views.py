"""The workbench pages: a CSM's book, all customers, focus lists, one
customer, and the managers' dashboard.

Views stay thin: ``workbench.access`` decides who may do what, the reads
live in ``health.selectors`` and the writes in ``health.services`` (band
overrides in ``health.tuning``). Every list page costs a fixed number of
queries whatever its size.
"""

from datetime import date, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import F
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from health import jobs, selectors, services, tuning
from health.forms import (
    InteractionForm,
    OverrideForm,
    OwnerForm,
    PulseForm,
    csm_users,
)
from health.models import Band, Customer, Metric, Override
from health.scoring import DEFAULT_BAND_LIMITS, contributions
from workbench.access import (
    customer_for,
    id_param,
    manager_required,
    may_work_on,
    role_required,
)
from workbench.roles import is_manager

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
# Overrides listed on the customer page; the admin keeps all of them.
OVERRIDES_SHOWN = 5

# Sort keys of the customer tables; "-key" sorts the other way. Empty values
# go last either way, and name then id keep pages stable.
SORTS = {
    "name": F("name"),
    "segment": F("segment"),
    "owner": F("owner__first_name"),
    "arr": F("arr"),
    "score": F("score"),
    "delta": F("delta"),
    "coverage": F("coverage"),
    "last_interaction": F("last_interaction_at"),
    "renewal": F("renewal_date"),
}


def _ordered(customers, sort: str, default: str):
    if sort.lstrip("-") not in SORTS:
        sort = default
    field = SORTS[sort.lstrip("-")]
    order = (
        field.desc(nulls_last=True)
        if sort.startswith("-")
        else field.asc(nulls_last=True)
    )
    return customers.order_by(order, "name", "pk"), sort


def _page(request, customers):
    try:
        size = int(request.GET.get("per_page", DEFAULT_PAGE_SIZE))
    except ValueError:
        size = DEFAULT_PAGE_SIZE
    size = min(max(size, 10), PAGE_SIZES[-1])
    page = Paginator(customers.values_list("pk", flat=True), size).get_page(
        request.GET.get("page")
    )
    page.object_list = selectors.customers_in_order(customers, page.object_list)
    return page


# --- Lists -------------------------------------------------------------------


@require_safe
@role_required
def home(request):
    """Managers start on the dashboard, everyone else on their book."""
    if is_manager(request.user):
        return redirect("dashboard")
    return redirect("my-book")


@require_safe
@role_required
def my_book(request):
    """The customers the user owns, least healthy first."""
    as_of = selectors.latest_as_of()
    customers = selectors.customer_scores().filter(owner=request.user)
    customers, sort = _ordered(customers, request.GET.get("sort", ""), "score")

    return render(
        request,
        "health/my_book.html",
        {
            "page": _page(request, customers),
            "page_sizes": PAGE_SIZES,
            "sort": sort,
            "as_of": as_of,
        },
    )


@require_safe
@role_required
def customer_list(request):
    """Every current customer: filters, search, sort and pages."""
    as_of = selectors.latest_as_of()
    customers = selectors.customer_scores()

    band = request.GET.get("band", "")
    if band == Band.UNSCORED:
        customers = selectors.unscored(customers)
    elif band in Band.values:
        customers = customers.filter(band=band)
    owner = request.GET.get("owner", "")
    if owner == "none":
        customers = customers.filter(owner__isnull=True)
    elif (owner_id := id_param(owner)) is not None:
        customers = customers.filter(owner_id=owner_id)
    segment = request.GET.get("segment", "")
    if segment:
        customers = customers.filter(segment=segment)
    declined = request.GET.get("declined") == "1"
    if declined:
        customers = selectors.declined(customers)
    query = request.GET.get("q", "").strip()
    if query:
        customers = customers.filter(name__icontains=query)
    customers, sort = _ordered(customers, request.GET.get("sort", ""), "score")

    segments = (
        Customer.objects.exclude(segment="")
        .order_by("segment")
        .values_list("segment", flat=True)
        .distinct()
    )
    return render(
        request,
        "health/customer_list.html",
        {
            "page": _page(request, customers),
            "page_sizes": PAGE_SIZES,
            "as_of": as_of,
            "sort": sort,
            "bands": Band.choices,
            "band": band,
            "owners": csm_users(),
            "owner": owner,
            "segments": segments,
            "segment": segment,
            "declined": declined,
            "decline_points": selectors.DECLINE_POINTS,
            "q": query,
        },
    )


FOCUS_LISTS = {
    "needs-attention": {
        "title": "Needs attention",
        "about": "Very unhealthy and unhealthy customers, most ARR at stake first.",
        "sort": "-arr",
    },
    "untapped": {
        "title": "Untapped",
        "about": "Neutral customers: neither at risk nor won over, where time "
        "spent pays most. Most ARR first.",
        "sort": "-arr",
    },
    "cross-sell": {
        "title": "Cross-sell",
        "about": "Healthy and very healthy customers, fewest products first: "
        "room to sell more.",
        "sort": "products",
    },
    "likely-lost": {
        "title": "Likely lost",
        "about": "Very unhealthy for 90 days or more without improving.",
        "sort": "score",
    },
}


@require_safe
@role_required
def focus_list(request, slug: str):
    focus = FOCUS_LISTS.get(slug)
    if focus is None:
        raise Http404("No such focus list.")

    as_of = selectors.latest_as_of()
    customers = selectors.customer_scores()
    if slug == "needs-attention":
        customers = customers.filter(band__in=selectors.LOW_BANDS)
    elif slug == "untapped":
        customers = customers.filter(band=Band.NEUTRAL)
    elif slug == "cross-sell":
        customers = customers.filter(band__in=selectors.HIGH_BANDS).annotate(
            products=selectors.product_counts_subquery()
        )
    elif as_of is not None:
        customers = selectors.likely_lost(customers, as_of)
    else:
        customers = customers.none()

    if slug == "cross-sell" and request.GET.get("sort", "") in ("", "products"):
        customers, sort = customers.order_by("products", "-arr", "pk"), "products"
    else:
        customers, sort = _ordered(
            customers, request.GET.get("sort", ""), focus["sort"]
        )

    return render(
        request,
        "health/focus_list.html",
        {
            "page": _page(request, customers),
            "page_sizes": PAGE_SIZES,
            "as_of": as_of,
            "sort": sort,
            "focus": focus,
            "slug": slug,
            "focus_lists": FOCUS_LISTS,
            "show_products": slug == "cross-sell",
        },
    )


# --- One customer ------------------------------------------------------------


def _customer_page(
    request,
    customer: Customer,
    *,
    interaction_form=None,
    pulse_form=None,
    override_form=None,
):
    """The customer page; the forms come back with their errors after a
    refused post."""
    snapshot = selectors.newest_snapshot(customer.pk)
    end = jobs.today()
    limits = DEFAULT_BAND_LIMITS
    baseline = delta = None
    changes = []

    if snapshot is not None:
        end = max(end, snapshot.as_of)
        model = snapshot.model
        limits = (
            0,
            model.band_unhealthy,
            model.band_neutral,
            model.band_healthy,
            model.band_very_healthy,
        )
        baseline = selectors.baseline_snapshot(customer.pk, snapshot.as_of)
        if baseline is not None:
            delta = selectors.score_change(snapshot.score, baseline.score)
        if delta is not None:
            changes = _what_changed(snapshot.breakdown, baseline.breakdown)

    start = end - timedelta(days=365)
    may_work = may_work_on(request.user, customer)
    may_reassign = is_manager(request.user)
    may_override = tuning.can_override(request.user, customer)
    metric_names = dict(Metric.objects.values_list("key", "name"))
    override, overrides = _overrides(customer)

    return render(
        request,
        "health/customer_detail.html",
        {
            "customer": customer,
            "snapshot": snapshot,
            "components": _components(snapshot, metric_names),
            "history": selectors.score_history(customer.pk, start, end),
            "chart_start": start,
            "chart_end": end,
            "limits": limits,
            "baseline": baseline,
            "delta": delta,
            "changes": changes,
            "interactions": customer.interactions.select_related("csm")[:20],
            "pulses": customer.pulses.select_related("csm")[:5],
            "may_work": may_work,
            "may_reassign": may_reassign,
            "may_override": may_override,
            "override": override,
            "overrides": overrides,
            "interaction_form": interaction_form
            or InteractionForm(initial={"occurred_on": jobs.today(), "kind": "call"}),
            "pulse_form": pulse_form or PulseForm(),
            "owner_form": OwnerForm(initial={"owner": customer.owner_id})
            if may_reassign
            else None,
            "override_form": override_form
            or OverrideForm(initial={"days": tuning.DEFAULT_OVERRIDE_DAYS}),
            "jobs_inline": settings.JOBS_INLINE,
        },
    )


def _overrides(customer: Customer) -> tuple[Override | None, list[Override]]:
    """The override in effect today and the customer's newest overrides, in
    effect or not (the audit trail). Two queries, and one for the author of
    an override in effect that is not among the newest."""
    current = tuning.current_override(customer.pk)
    recent = list(
        customer.overrides.select_related("created_by", "ended_by").order_by(
            "-created_at", "-pk"
        )[:OVERRIDES_SHOWN]
    )
    # The one in effect is nearly always the newest: the copy from the list
    # comes with its author.
    if current is not None:
        current = {row.pk: row for row in recent}.get(current.pk, current)
    return current, recent


def _components(snapshot, metric_names: dict[str, str]) -> list[dict]:
    if snapshot is None:
        return []
    components = []
    for component in snapshot.breakdown.get("components", []):
        measures = [
            {**m, "name": metric_names.get(m["metric"], m["metric"])}
            for m in component.get("measures", [])
        ]
        components.append({**component, "measures": measures})
    return components


def _what_changed(now: dict, then: dict) -> list[dict]:
    """Each component's contribution to the change, biggest first."""
    names = {c["key"]: c["name"] for c in then.get("components", [])}
    names |= {c["key"]: c["name"] for c in now.get("components", [])}
    scores_now = {c["key"]: c.get("score") for c in now.get("components", [])}
    scores_then = {c["key"]: c.get("score") for c in then.get("components", [])}
    rows = [
        {
            "key": key,
            "name": names.get(key, key),
            "then": scores_then.get(key),
            "now": scores_now.get(key),
            "contribution": value,
        }
        for key, value in contributions(now, then).items()
    ]
    return sorted(rows, key=lambda row: -abs(row["contribution"]))


@require_safe
@role_required
def customer_detail(request, pk: int):
    customer = customer_for(request, pk)
    return _customer_page(request, customer)


@require_POST
@role_required
def log_interaction(request, pk: int):
    customer = customer_for(request, pk, action="work")

    form = InteractionForm(request.POST)
    if not form.is_valid():
        return _customer_page(request, customer, interaction_form=form)

    services.log_interaction(
        customer=customer,
        csm=request.user,
        kind=form.cleaned_data["kind"],
        occurred_at=form.occurred_at(),
        sentiment=form.cleaned_data["sentiment"],
        summary=form.cleaned_data["summary"],
    )
    messages.success(request, _logged("Interaction logged."))
    return redirect(reverse("customer-detail", args=[customer.pk]) + "#interactions")


@require_POST
@role_required
def log_pulse(request, pk: int):
    customer = customer_for(request, pk, action="work")

    form = PulseForm(request.POST)
    if not form.is_valid():
        return _customer_page(request, customer, pulse_form=form)

    services.log_pulse(
        customer=customer,
        csm=request.user,
        rating=form.cleaned_data["rating"],
        note=form.cleaned_data["note"],
    )
    messages.success(request, _logged("Pulse saved."))
    return redirect(reverse("customer-detail", args=[customer.pk]) + "#pulse")


def _logged(what: str) -> str:
    if settings.JOBS_INLINE:
        return f"{what} The score is up to date."
    return f"{what} The score updates once the re-score job has run."


@require_POST
@role_required
def reassign_owner(request, pk: int):
    customer = customer_for(request, pk, action="reassign")

    form = OwnerForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose an owner from the list.")
        return redirect("customer-detail", pk=customer.pk)

    services.reassign_owner(customer=customer, owner=form.cleaned_data["owner"])
    owner = customer.owner
    name = owner.get_full_name() or owner.get_username() if owner else "no one"
    messages.success(request, f"{customer.name} now belongs to {name}.")
    return redirect("customer-detail", pk=customer.pk)


def _customer_to_override(request, pk: int) -> Customer:
    """The customer, when the user may override its band: 404 for an
    unknown customer, 403 for a refused user."""
    customer = customer_for(request, pk)
    if not tuning.can_override(request.user, customer):
        raise PermissionDenied("You may not override this customer's band.")
    return customer


@require_POST
@role_required
def override_band(request, pk: int):
    customer = _customer_to_override(request, pk)

    form = OverrideForm(request.POST)
    if not form.is_valid():
        return _customer_page(request, customer, override_form=form)

    try:
        override = tuning.override_band(
            customer=customer,
            band=form.cleaned_data["band"],
            reason=form.cleaned_data["reason"],
            days=form.cleaned_data["days"],
            by=request.user,
        )
    except ValidationError as error:
        # The service keys its errors by field (band, reason, days); any
        # other key goes above the form rather than failing the request.
        errors = getattr(error, "message_dict", None) or {None: error.messages}
        for field, texts in errors.items():
            form.add_error(field if field in form.fields else None, texts)
        return _customer_page(request, customer, override_form=form)

    messages.success(
        request,
        f"Band overridden to {override.get_band_display()} "
        f"until {override.expires_on:%Y-%m-%d}.",
    )
    return redirect(reverse("customer-detail", args=[customer.pk]) + "#override")


@require_POST
@role_required
def end_override(request, pk: int, override_pk: int):
    customer = _customer_to_override(request, pk)
    override = get_object_or_404(Override, pk=override_pk, customer=customer)
    override.customer = customer

    # The page may be stale: someone else may have ended or replaced the
    # override since; the service then changes nothing.
    if override.in_effect_on(jobs.today()):
        tuning.end_override(override=override, by=request.user)
        messages.success(request, "Override ended; the computed band applies.")
    else:
        messages.info(request, "That override was no longer in effect.")
    return redirect(reverse("customer-detail", args=[customer.pk]) + "#override")


# --- Managers ----------------------------------------------------------------


def _month_ends(today: date, count: int = 12) -> list[date]:
    """The last ``count`` month ends before today, oldest first."""
    ends, day = [], today.replace(day=1) - timedelta(days=1)
    for _ in range(count):
        ends.append(day)
        day = day.replace(day=1) - timedelta(days=1)
    return ends[::-1]


@require_safe
@manager_required
def dashboard(request):
    """Band mix now and by month, the biggest movers, and every CSM's book."""
    as_of = selectors.latest_as_of()
    scores = selectors.customer_scores()

    books, mix_now = selectors.books_and_band_mix(scores)
    month_ends = _month_ends(jobs.today())
    by_month = selectors.band_mix_by_month(month_ends)
    months = [(end.strftime("%b %y"), by_month.get(end, {})) for end in month_ends]
    months.append(("Now", mix_now))

    down, up = selectors.biggest_movers(scores)

    owners = list(csm_users())
    owner_ids = {user.pk for user in owners}
    others = [pk for pk in books if pk is not None and pk not in owner_ids]
    owners += list(get_user_model().objects.filter(pk__in=others))
    empty = {"customers": 0, "arr": 0, "unhealthy": 0}
    rows = [{"user": user, **books.get(user.pk, empty)} for user in owners]
    unowned = books.get(None)

    return render(
        request,
        "health/dashboard.html",
        {
            "as_of": as_of,
            "mix_now": [
                (key, label, mix_now.get(key, 0)) for key, label in Band.choices
            ],
            "total": sum(mix_now.values()),
            "months": months,
            "down": down,
            "up": up,
            "books": rows,
            "unowned": unowned,
        },
    )
