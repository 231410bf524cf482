from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from core.access import get_owned_or_404
from core.page_actions import attempt_on_form
from schedules import services
from schedules.forms import PolicyForm
from schedules.models import SnapshotPolicy
from vms.models import VM

RECENT_RUNS = 5


def vm_page_part(request, vm) -> dict:
    """What the VM page shows of its snapshot policy: the policy, its next run, recent runs."""
    policy = SnapshotPolicy.objects.filter(vm=vm).first()
    runs = list(policy.runs.select_related("operation")[:RECENT_RUNS]) if policy else []
    return {"policy": policy, "policy_runs": runs, "sections": ["schedules/_vm_policy.html"]}


@login_required
@require_http_methods(["GET", "POST"])
def vm_policy(request, pk):
    """Set, change or switch off the VM's snapshot policy."""
    vm = get_owned_or_404(VM.objects.owned_by(request.user), pk)
    policy = SnapshotPolicy.objects.filter(vm=vm).first()
    initial = {}
    if policy is not None:
        initial = {field: getattr(policy, field) for field in PolicyForm.base_fields}
    form = PolicyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        saved, _ = attempt_on_form(
            form,
            lambda: services.policy_set(
                vm=vm,
                enabled=data.pop("enabled"),
                schedule=data.pop("schedule"),
                timezone_name=data.pop("timezone").strip(),
                **data,
            ),
        )
        if saved:
            messages.success(request, f"The snapshot policy of {vm.name} is saved.")
            return redirect("vm_detail", vm.pk)
    return render(request, "schedules/policy.html", {"vm": vm, "form": form, "policy": policy})


@login_required
@require_POST
def vm_policy_delete(request, pk):
    vm = get_owned_or_404(VM.objects.owned_by(request.user), pk)
    policy = SnapshotPolicy.objects.filter(vm=vm).first()
    if policy is None:
        messages.error(request, f"{vm.name} has no snapshot policy.")
    else:
        services.policy_delete(policy=policy)
        messages.success(request, f"{vm.name} no longer takes snapshots on schedule.")
    return redirect("vm_detail", vm.pk)
