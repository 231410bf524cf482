from django.urls import path

from vms import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
