"""The three roles, as groups with exactly these names, and checks on them."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

CSM = "CSM"
MANAGER = "CS manager"
ADMIN = "Admin"
ROLES = (CSM, MANAGER, ADMIN)


def role_names(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_role_names", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            cached.add(ADMIN)
        user._role_names = cached
    return cached


def has_role(user, *roles: str) -> bool:
    return bool(role_names(user) & set(roles))


def is_manager(user) -> bool:
    return has_role(user, MANAGER, ADMIN)
