"""The cast every test can use, and the switches between inline jobs, a real
RQ worker and the public data files."""

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User

from workbench.roles import ADMIN, CSM, MANAGER


def _user(username: str, role: str | None, **extra) -> User:
    user = User.objects.create_user(
        username=username,
        email=f"{username}@example.com",
        password="test-pass-123",  # noqa: S106
        **extra,
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def csm(db) -> User:
    return _user("csm", CSM, first_name="Casey", last_name="Smith")


@pytest.fixture
def other_csm(db) -> User:
    return _user("other_csm", CSM, first_name="Olive", last_name="Owens")


@pytest.fixture
def manager(db) -> User:
    return _user("manager", MANAGER, first_name="Morgan", last_name="Lee")


@pytest.fixture
def admin_user(db) -> User:
    return _user("admin", ADMIN, is_staff=True, is_superuser=True)


@pytest.fixture
def outsider(db) -> User:
    """Logged in, but with no role."""
    return _user("outsider", None)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Every test hashes the cast's passwords; the production hasher is slow
    on purpose, which tests do not need."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def inline_jobs(request, settings):
    """Jobs run inline unless a test is marked ``rq``: those need Redis and
    run a real worker process."""
    if request.node.get_closest_marker("rq") is None:
        settings.JOBS_INLINE = True


@pytest.fixture
def shared_data() -> Path:
    """The folder of public data files; tests that need it skip without it."""
    folder = Path(settings.SHARED_DATA_DIR)
    if not folder.is_dir():
        pytest.skip(
            f"public data folder {folder} is absent; set WORKBENCH_SHARED_DATA "
            "to the shared data folder to run this test"
        )
    return folder
