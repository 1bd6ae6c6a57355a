from django.urls import path

from health import views

urlpatterns = [
    path("", views.home, name="home"),
    path("book/", views.my_book, name="my-book"),
    path("customers/", views.customer_list, name="customer-list"),
    path("customers/<int:pk>/", views.customer_detail, name="customer-detail"),
    path(
        "customers/<int:pk>/interactions/",
        views.log_interaction,
        name="customer-log-interaction",
    ),
    path("customers/<int:pk>/pulses/", views.log_pulse, name="customer-log-pulse"),
    path("customers/<int:pk>/owner/", views.reassign_owner, name="customer-reassign"),
    path(
        "customers/<int:pk>/overrides/",
        views.override_band,
        name="customer-override",
    ),
    path(
        "customers/<int:pk>/overrides/<int:override_pk>/end/",
        views.end_override,
        name="customer-end-override",
    ),
    path("focus/<slug:slug>/", views.focus_list, name="focus-list"),
    path("dashboard/", views.dashboard, name="dashboard"),
]
