"""The permission matrix: every workbench page and action, for every role and
every HTTP method. A refused request is a redirect to the login page (no
login), 403 (no right), 404 (no such customer) or 405 (wrong method); never
a 500, and nothing changes unless the request was allowed to change it."""

import pytest
from django.urls import reverse

from health import tuning
from health import urls as health_urls
from health.models import Customer, Interaction, Override, Pulse, ScoreSnapshot
from tests.test_views import scored

ROLES = ["anonymous", "outsider", "owner", "other_csm", "manager", "admin"]
METHODS = ["get", "post", "put", "patch", "delete"]
MISSING = 999_999
LOGIN = reverse("login")

READ = dict.fromkeys(["owner", "other_csm", "manager", "admin"], 200)
WORK = {"owner": 302, "other_csm": 403, "manager": 302, "admin": 302}
MANAGE = {"owner": 403, "other_csm": 403, "manager": 302, "admin": 302}
OVERRIDE = {"band": "healthy", "reason": "Renewal signed yesterday", "days": "30"}

# (URL name, what it names, the one method it answers, the status per role,
# the data a post sends). It names the customer, a missing one, a focus list,
# or ("foreign") the customer with another customer's override; an override
# URL also names an override made just before. Roles left out of a status
# map answer 302 to the login page (anonymous) or 403 (no role).
VIEWS = [
    ("home", None, "get", dict.fromkeys(READ, 302), None),
    ("my-book", None, "get", READ, None),
    ("customer-list", None, "get", READ, None),
    ("focus-list", "needs-attention", "get", READ, None),
    ("focus-list", "untapped", "get", READ, None),
    ("focus-list", "cross-sell", "get", READ, None),
    ("focus-list", "likely-lost", "get", READ, None),
    ("focus-list", "no-such-list", "get", dict.fromkeys(READ, 404), None),
    ("dashboard", None, "get", {**MANAGE, "manager": 200, "admin": 200}, None),
    ("customer-detail", "customer", "get", READ, None),
    ("customer-detail", "missing", "get", dict.fromkeys(READ, 404), None),
    (
        "customer-log-interaction",
        "customer",
        "post",
        WORK,
        {"kind": "call", "occurred_on": "2026-01-05", "sentiment": "1"},
    ),
    (
        "customer-log-interaction",
        "missing",
        "post",
        dict.fromkeys(READ, 404),
        {"kind": "call", "occurred_on": "2026-01-05", "sentiment": "1"},
    ),
    ("customer-log-pulse", "customer", "post", WORK, {"rating": "2"}),
    ("customer-log-pulse", "missing", "post", dict.fromkeys(READ, 404), {}),
    ("customer-reassign", "customer", "post", MANAGE, {"owner": "new_owner"}),
    ("customer-reassign", "missing", "post", dict.fromkeys(READ, 404), {}),
    ("customer-override", "customer", "post", WORK, OVERRIDE),
    ("customer-override", "missing", "post", dict.fromkeys(READ, 404), OVERRIDE),
    ("customer-end-override", "customer", "post", WORK, None),
    ("customer-end-override", "missing", "post", dict.fromkeys(READ, 404), None),
    # Another customer's override: unknown here, once the user may override.
    (
        "customer-end-override",
        "foreign",
        "post",
        {**dict.fromkeys(READ, 404), "other_csm": 403},
        None,
    ),
]


def state() -> tuple:
    """Everything a request of the workbench pages could change."""
    return (
        list(Interaction.objects.values_list("pk", "kind", "summary")),
        list(Pulse.objects.values_list("pk", "rating")),
        list(
            ScoreSnapshot.objects.values_list(
                "pk", "score", "computed_at", "overridden_band"
            )
        ),
        list(Customer.objects.values_list("pk", "owner_id", "updated_at")),
        list(Override.objects.values_list("pk", "band", "ended_on")),
    )


def test_the_matrix_covers_every_health_url():
    covered = {name for name, *_ in VIEWS}

    assert covered == {pattern.name for pattern in health_urls.urlpatterns}


@pytest.fixture
def cast(csm, other_csm, manager, admin_user, outsider):
    return {
        "anonymous": None,
        "outsider": outsider,
        "owner": csm,
        "other_csm": other_csm,
        "manager": manager,
        "admin": admin_user,
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "target", "allowed", "expected", "data"),
    VIEWS,
    ids=[f"{v[0]}-{v[1]}" for v in VIEWS],
)
def test_permission_matrix(client, cast, role, name, target, allowed, expected, data):
    customer = scored("Acme", {0: 50.0, 30: 55.0}, owner=cast["owner"])
    if target in ("customer", "foreign"):
        args = [customer.pk]
    elif target == "missing":
        args = [MISSING]
    else:
        args = [target] if target else []
    if name == "customer-end-override":
        # The override to end: this customer's, another customer's, or none.
        other = scored("Other", {0: 50.0}) if target == "foreign" else customer
        override = tuning.override_band(
            customer=other, band="healthy", reason="Call went well", by=cast["admin"]
        )
        args.append(MISSING if target == "missing" else override.pk)
    url = reverse(name, args=args)
    if data and data.get("owner") == "new_owner":
        data = {"owner": cast["other_csm"].pk}
    if cast[role]:
        client.force_login(cast[role])
    wanted = expected.get(role, 302 if role == "anonymous" else 403)

    for method in METHODS:
        before = state()

        response = getattr(client, method)(url, data or {})

        if method != allowed:
            assert response.status_code == 405, method
            assert state() == before, method
            continue
        assert response.status_code == wanted, method
        if role == "anonymous":
            assert response["Location"].startswith(LOGIN)
        if method == "get" or wanted != 302 or role == "anonymous":
            assert state() == before, "a refused request or a GET changed data"
        else:
            assert state() != before, "an allowed post changed nothing"
