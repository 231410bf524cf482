from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from vms.models import VM


@login_required
def dashboard(request):
    vms = VM.objects.visible().filter(owner=request.user).select_related("image")
    return render(request, "vms/dashboard.html", {"vms": vms})
