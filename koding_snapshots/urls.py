from django.contrib import admin
from django.urls import include, path

from koding_snapshots import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("vms.urls")),
    path("", include("snapshots.urls")),
    path("", include("operations.urls")),
]
