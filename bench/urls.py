from django.http import JsonResponse
from django.urls import include, path


def bare(request):
    """The least a Django view can do: the baseline of the API benchmark."""
    return JsonResponse({"ok": True})


urlpatterns = [
    path("bench/bare/", bare),
    path("", include("koding_snapshots.urls")),
]
