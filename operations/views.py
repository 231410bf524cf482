from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from operations.models import Operation


@login_required
@require_GET
def activity(request):
    operations = (
        Operation.objects.owned_by(request.user)
        .select_related("requester")
        .prefetch_related("subject")
    )
    page = Paginator(operations, 25).get_page(request.GET.get("page"))
    busy = any(operation.is_active for operation in page)
    context = {"page": page, "busy": busy}
    if request.headers.get("HX-Request"):
        return render(request, "operations/_activity_table.html", context)
    return render(request, "operations/activity.html", context)
