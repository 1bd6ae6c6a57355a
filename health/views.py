from django.core.paginator import Paginator
from django.db.models import F, OuterRef, Subquery
from django.shortcuts import render
from django.views.decorators.http import require_GET

from health.models import Band, Customer, ScoreSnapshot
from workbench.access import role_required

SORTS = {
    "name": F("name").asc(),
    "-name": F("name").desc(),
    "score": F("score").asc(nulls_first=True),
    "-score": F("score").desc(nulls_last=True),
    "arr": F("arr").asc(),
    "-arr": F("arr").desc(),
}


@require_GET
@role_required
def customer_list(request):
    """Current customers with their latest score, least healthy first."""
    latest = ScoreSnapshot.objects.filter(customer=OuterRef("pk")).order_by(
        "-as_of", "-computed_at"
    )
    customers = (
        Customer.objects.filter(churned_on__isnull=True)
        .select_related("owner")
        .annotate(
            score=Subquery(latest.values("score")[:1]),
            band=Subquery(latest.values("band")[:1]),
            as_of=Subquery(latest.values("as_of")[:1]),
        )
    )

    band = request.GET.get("band", "")
    if band in Band.values:
        customers = customers.filter(band=band)
    query = request.GET.get("q", "").strip()
    if query:
        customers = customers.filter(name__icontains=query)
    sort = request.GET.get("sort", "score")
    customers = customers.order_by(SORTS.get(sort, SORTS["score"]), "name")

    page = Paginator(customers, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "health/customer_list.html",
        {
            "page": page,
            "bands": Band.choices,
            "band": band,
            "q": query,
            "sort": sort,
        },
    )
