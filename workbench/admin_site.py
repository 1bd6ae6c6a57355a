"""The Django admin, open to the Admin role only."""

from django.contrib import admin

from workbench.roles import ADMIN, has_role


class WorkbenchAdminSite(admin.AdminSite):
    site_header = "Customer Health Workbench"
    site_title = "Workbench admin"
    index_title = "Administration"

    def has_permission(self, request) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and has_role(user, ADMIN))
