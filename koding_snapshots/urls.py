from django.contrib import admin
from django.urls import include, path

from core import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/", include("koding_snapshots.api_urls")),
    path("", include("accounts.urls")),
    # schedules, sharing, transfers and snapshots before vms: they add routes under "vms/" (the
    # new-VM page, the VM page's snapshot dialogs, its policy), and vms ends with a catch-all
    # "vms/<id>/<action>/".
    path("", include("transfers.urls")),
    path("", include("schedules.urls")),
    path("", include("sharing.urls")),
    path("", include("snapshots.urls")),
    path("", include("terminal.urls")),
    path("", include("vms.urls")),
    path("", include("operations.urls")),
]

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
