from django.conf import settings
from django.http import HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.health import run_checks, run_checks_cached


@never_cache
@require_GET
def healthz(request):
    """200 when every part is up ("ok"), or when only some of several hosts are down
    ("degraded": the others run on); 503 otherwise ("failing"), with each part up or down.

    Only staff see why a part is down: the messages name versions, worker hosts and processes,
    and raw errors, which are no one else's business. `manage.py doctor` shows them too.
    """
    detailed = request.user.is_authenticated and request.user.is_staff
    # Staff get a fresh answer; anyone else one at most HEALTHZ_CACHE_SECONDS old, so a flood of
    # probes cannot turn into a flood of libvirt connections.
    checks = run_checks() if detailed else run_checks_cached(settings.HEALTHZ_CACHE_SECONDS)
    healthy = all(check.ok or check.partial for check in checks)
    status = "ok" if all(check.ok for check in checks) else "degraded"
    body = {
        "status": status if healthy else "failing",
        "checks": {
            c.name: {"ok": c.ok, "message": c.message} if detailed else {"ok": c.ok} for c in checks
        },
    }
    return JsonResponse(body, status=200 if healthy else 503)


def _wants_json(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    """404 everywhere: the API's error body under /api/, the project's page elsewhere."""
    if _wants_json(request):
        return JsonResponse({"error": {"code": "not_found", "message": "Not found."}}, status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    """500, without a traceback and without touching anything that might be what broke."""
    if _wants_json(request):
        body = {"error": {"code": "server_error", "message": "Something went wrong on our side."}}
        return JsonResponse(body, status=500)
    return HttpResponseServerError(loader.get_template("500.html").render())


def bad_request(request, exception=None):
    if _wants_json(request):
        body = {"error": {"code": "bad_request", "message": "The request could not be read."}}
        return JsonResponse(body, status=400)
    return render(request, "400.html", status=400)


def permission_denied(request, exception=None):
    if _wants_json(request):
        body = {"error": {"code": "permission_denied", "message": "You may not do that."}}
        return JsonResponse(body, status=403)
    return render(request, "403.html", status=403)
