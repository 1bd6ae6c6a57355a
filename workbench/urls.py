from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

# django-rq's own URLs check staff status only (its statistics JSON also takes
# an API token); behind the admin site's check every one of them asks for the
# Admin role like the rest of the admin.
rq_urls = (
    [
        re_path(str(p.pattern), admin.site.admin_view(p.callback), name=p.name)
        for p in get_api_urlpatterns()
    ]
    + get_admin_urlpatterns(view_wrapper=admin.site.admin_view),
    "django_rq",
)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("django-rq/", include(rq_urls)),
    path("playbooks/", include("playbooks.urls")),
    path("", include("health.urls")),
]
