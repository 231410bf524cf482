from django.contrib import admin
from django.urls import include, path

from koding_snapshots import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/", include("koding_snapshots.api.urls")),
    path("", include("accounts.urls")),
    path("", include("vms.urls")),
    path("", include("snapshots.urls")),
    path("", include("operations.urls")),
]

handler400 = "koding_snapshots.views.bad_request"
handler403 = "koding_snapshots.views.permission_denied"
handler404 = "koding_snapshots.views.not_found"
handler500 = "koding_snapshots.views.server_error"
