from django.http import JsonResponse
from django.urls import include, path

from bench import plain


def bare(request):
    """The least a Django view can do: a floor under both the API and its plain baseline."""
    return JsonResponse({"ok": True})


urlpatterns = [
    path("bench/bare/", bare),
    path("bench/plain/snapshots/", plain.snapshot_list),
    path("bench/plain/operations/<uuid:pk>/", plain.operation_detail),
    path("", include("koding_snapshots.urls")),
]
