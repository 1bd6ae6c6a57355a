from django.urls import path

from health import views

urlpatterns = [
    path("", views.customer_list, name="customer-list"),
]
