from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http.request import split_domain_port
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.access import get_owned_or_404
from vms.models import VM, VMState


def socket_url(request, vm: VM) -> str:
    """Where the page's terminal connects: TERMINAL_URL when set, else this host on
    TERMINAL_PORT (0: the very address of the page, when the ASGI side serves it all)."""
    path = f"/vms/{vm.pk}/terminal/ws/"
    if settings.TERMINAL_URL:
        return settings.TERMINAL_URL + path
    scheme = "wss" if request.is_secure() else "ws"
    if not settings.TERMINAL_PORT:
        return f"{scheme}://{request.get_host()}{path}"
    host, _ = split_domain_port(request.get_host())
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{settings.TERMINAL_PORT}{path}"


@login_required
@require_GET
def vm_terminal(request, pk):
    """The VM's serial console as a terminal: every key reaches the guest as it is typed."""
    vm = get_owned_or_404(VM.objects.owned_by(request.user).select_related("host"), pk)
    context = {
        "vm": vm,
        "running": vm.state == VMState.RUNNING,
        "socket_url": socket_url(request, vm),
        "idle_minutes": max(1, round(settings.TERMINAL_IDLE_SECONDS / 60)),
    }
    return render(request, "terminal/terminal.html", context)
