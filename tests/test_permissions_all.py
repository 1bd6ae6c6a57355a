"""Every URL of the project, found by walking the resolver, has a matrix
entry: a view added anywhere without one fails here.

Each family has its own matrix:

- the workbench pages: ``VIEWS`` in ``tests/test_permissions.py``;
- the playbook pages: ``MATRIX`` in ``tests/test_playbooks_views.py``;
- log in and log out: ``AUTH`` below;
- the Django admin and the django-rq dashboard: below, where every one of
  their URLs is requested by every role that must be refused.

The admin lets in Admin-role staff only (``WorkbenchAdminSite``). django-rq
checks less: its dashboard views carry ``staff_member_required`` (active
and ``is_staff``), its stats JSON takes ``is_staff`` or an API token, and
none of them asks for the Admin role. CSMs and managers are not staff, so
they are refused; a test below marks where staff status alone still opens
django-rq.
"""

import re
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.urls.resolvers import RegexPattern, RoutePattern

from tests.test_permissions import VIEWS as HEALTH_VIEWS
from tests.test_playbooks_views import MATRIX as PLAYBOOK_MATRIX

ADMIN_LOGIN = reverse("admin:login")

# Log in and log out: (URL name, method, status for every role). Logging
# out is a POST since Django 5; a GET is refused.
AUTH = [
    ("login", "get", 200),
    ("logout", "get", 405),
    ("logout", "post", 302),
]

# Families walked whole below: every URL in them must refuse the roles
# that are not Admin-role staff, so a new URL there needs no entry.
WALKED_NAMESPACES = ("admin", "django_rq")

# Sample text for the regular-expression routes a sample cannot be built
# for from their converters; a new one fails the walk until it is added.
REGEX_SAMPLES = {
    r"^stats.json/?$": "stats.json/",
    r"^stats.json/(?P<token>[\w]+)?/?$": "stats.json/nottheapitoken/",
    r"(?P<url>.*)$": "no-such-page/",
}


@dataclass(frozen=True)
class Url:
    namespace: str
    name: str | None
    route: str
    path: str
    callback: object

    @property
    def qualified_name(self) -> str | None:
        if self.name is None:
            return None
        return f"{self.namespace}:{self.name}" if self.namespace else self.name


def _sample(pattern) -> str:
    """The pattern's text with a sample for every parameter: "1" suits the
    int, str, slug and path converters."""
    if isinstance(pattern, RoutePattern):
        return re.sub(r"<(?:\w+:)?\w+>", "1", str(pattern))
    assert isinstance(pattern, RegexPattern)
    if str(pattern) in REGEX_SAMPLES:
        return REGEX_SAMPLES[str(pattern)]
    # The admin's app index, ^(?P<app_label>auth|health|...)/$: the first
    # app label, as the list changes with the apps.
    match = re.fullmatch(r"\^\(\?P<\w+>(\w+)\|.*\)/\$", str(pattern))
    assert match, f"add a sample for the route {pattern} to REGEX_SAMPLES"
    return f"{match[1]}/"


def project_urls(patterns=None, namespace: str = "", prefix: str = "/") -> list[Url]:
    """Every URL pattern of the project, with a path that resolves to it."""
    urls = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        sample = _sample(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace]))
            urls += project_urls(entry.url_patterns, inner, prefix + sample)
            continue
        assert isinstance(entry, URLPattern)
        urls.append(
            Url(
                namespace=namespace,
                name=entry.name,
                route=prefix + str(entry.pattern),
                path=prefix + sample,
                callback=entry.callback,
            )
        )
    return urls


def walked(*namespaces: str) -> list[Url]:
    return [url for url in project_urls() if url.namespace in namespaces]


def test_every_sample_path_reaches_its_own_view():
    for url in project_urls():
        match = resolve(url.path)

        # Or a pattern with the same route before it: django-rq's admin
        # dashboard shadows its own changelist, which no request reaches.
        assert match.func is url.callback or f"/{match.route}" == url.route, url


def test_every_url_of_the_project_has_a_matrix_entry():
    covered = (
        {name for name, *_ in HEALTH_VIEWS}
        | {f"playbooks:{name}" for name, *_ in PLAYBOOK_MATRIX}
        | {name for name, *_ in AUTH}
    )

    missing = [
        url.qualified_name or f"an unnamed URL {url.route}"
        for url in project_urls()
        if url.namespace not in WALKED_NAMESPACES and url.qualified_name not in covered
    ]

    assert missing == [], "add these to a permission matrix"


# --- Log in and log out ------------------------------------------------------

ROLES = ["anonymous", "outsider", "csm", "manager", "admin_user"]


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize(("name", "method", "expected"), AUTH)
def test_login_and_logout_for_every_role(
    client, db, request, who, name, method, expected
):
    if who != "anonymous":
        client.force_login(request.getfixturevalue(who))

    response = getattr(client, method)(reverse(name))

    assert response.status_code == expected
    if name == "logout" and method == "post":
        assert response["Location"] == reverse("login")
        assert "_auth_user_id" not in client.session


# --- The Django admin and the django-rq dashboard ----------------------------


@pytest.fixture(autouse=True)
def no_redis(monkeypatch):
    """Stand in for the queue statistics, so that a view these tests reach
    by mistake never talks to a Redis server; ``reached`` lists the calls."""
    import django_rq.stats_views

    reached = []
    monkeypatch.setattr(
        django_rq.stats_views,
        "get_statistics",
        lambda *args, **kwargs: reached.append("stats") or {"queues": []},
    )
    monkeypatch.setattr(
        django_rq.stats_views,
        "get_scheduler_statistics",
        lambda *args, **kwargs: reached.append("schedulers") or {"schedulers": {}},
    )
    monkeypatch.setattr(
        django_rq.stats_views,
        "get_cron_schedulers",
        lambda *args, **kwargs: reached.append("cron") or [],
    )
    return reached


def _refusal(url: Url, method: str, client) -> str | None:
    """What is wrong with the answer to a request the user must not make;
    None when it is refused as it should be."""
    response = getattr(client, method)(url.path)
    status, location = response.status_code, response.get("Location", "")

    if url.qualified_name == "admin:login":
        # The admin's login form; it shows, and lets in no one without
        # the Admin role.
        ok = status == 200
    elif url.qualified_name == "admin:logout":
        ok = status == 302 and location == reverse("admin:index")
    else:
        ok = status == 302 and location.startswith(ADMIN_LOGIN)
    if ok:
        return None
    return f"{method.upper()} {url.path} ({url.qualified_name}): {status} {location}"


@pytest.mark.parametrize("who", ["anonymous", "outsider", "csm", "manager"])
def test_admin_and_rq_dashboard_refuse_everyone_but_admins(
    client, db, request, no_redis, who
):
    if who != "anonymous":
        client.force_login(request.getfixturevalue(who))
    urls = walked(*WALKED_NAMESPACES)
    assert {url.namespace for url in urls} == set(WALKED_NAMESPACES)

    wrong = [
        problem
        for url in urls
        for method in ("get", "post")
        if (problem := _refusal(url, method, client))
    ]

    assert wrong == []
    assert no_redis == []


@pytest.mark.parametrize("who", ["csm", "manager"])
def test_staff_status_alone_opens_no_admin_page(client, db, request, no_redis, who):
    user = request.getfixturevalue(who)
    user.is_staff = True
    user.save()
    client.force_login(user)

    wrong = [
        problem
        for url in walked("admin")
        for method in ("get", "post")
        if (problem := _refusal(url, method, client))
    ]

    assert wrong == []
    assert no_redis == []


@pytest.mark.parametrize(
    "name", ["django_rq:home", "django_rq:home_json", "django_rq:jobs"]
)
@pytest.mark.parametrize("who", ["csm", "manager"])
def test_staff_status_alone_opens_no_rq_page(client, db, request, no_redis, who, name):
    user = request.getfixturevalue(who)
    user.is_staff = True
    user.save()
    client.force_login(user)

    kwargs = {"queue_index": 0} if name == "django_rq:jobs" else {}
    response = client.get(reverse(name, kwargs=kwargs))

    assert response.status_code == 302
    assert response["Location"].startswith(ADMIN_LOGIN)
    assert no_redis == []


def test_admin_role_staff_open_the_admin(client, admin_user):
    client.force_login(admin_user)

    assert client.get(reverse("admin:index")).status_code == 200


def test_admin_role_staff_open_the_rq_dashboard(client, admin_user, no_redis):
    client.force_login(admin_user)

    assert client.get(reverse("django_rq:home")).status_code == 200
    assert "stats" in no_redis
