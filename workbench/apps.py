from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class WorkbenchConfig(AppConfig):
    name = "workbench"
    verbose_name = "Workbench"
    default = True


class WorkbenchAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "workbench.admin_site.WorkbenchAdminSite"
