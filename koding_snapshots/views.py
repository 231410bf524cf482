from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from koding_snapshots.health import run_checks


@never_cache
@require_GET
def healthz(request):
    """200 when every part is up, 503 otherwise; the body says which part and why."""
    checks = run_checks()
    healthy = all(check.ok for check in checks)
    body = {
        "status": "ok" if healthy else "failing",
        "checks": {c.name: {"ok": c.ok, "message": c.message} for c in checks},
    }
    return JsonResponse(body, status=200 if healthy else 503)
