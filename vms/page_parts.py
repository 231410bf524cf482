"""What the features built on the domain (schedules, sharing, transfers) add to the machine
pages: a plug-in point, since the domain imports no feature above it.

The dashboard and a VM's page also show what such a feature keeps about a VM (its snapshot
policy). The feature registers a part here from its `AppConfig.ready`; the VM views ask every
registered part for its context and render it with their own. A part adds keys to the context
and may set attributes on the VMs it is given; the key `sections` lists templates the VM page
includes below its snapshots, in registration order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

DashboardPart = Callable[..., dict]  # (request, vms) -> context
VMPagePart = Callable[..., dict]  # (request, vm) -> context

_dashboard: list[DashboardPart] = []
_vm_page: list[VMPagePart] = []


def register(*, dashboard: DashboardPart | None = None, vm_page: VMPagePart | None = None) -> None:
    """Add a part to the dashboard, a VM's page, or both (once each, however often called)."""
    if dashboard is not None and dashboard not in _dashboard:
        _dashboard.append(dashboard)
    if vm_page is not None and vm_page not in _vm_page:
        _vm_page.append(vm_page)


def dashboard_context(request, vms: Iterable) -> dict:
    """The context the dashboard's parts add for this page of VMs."""
    context: dict = {}
    for part in _dashboard:
        context.update(part(request, vms))
    return context


def vm_page_context(request, vm) -> dict:
    """The context a VM page's parts add (its full page and the part polled while it changes)."""
    context: dict = {"sections": []}
    for part in _vm_page:
        added = dict(part(request, vm))
        context["sections"] += added.pop("sections", [])
        context.update(added)
    return context
