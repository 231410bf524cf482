from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.access import get_owned_or_404
from operations.activity import ActivityFilterForm
from operations.models import Operation


@login_required
@require_GET
def activity(request):
    """The user's operations, newest first, narrowed by the filters of the query string (one
    not valid is ignored and said so); polled while one of the page's runs."""
    filters = ActivityFilterForm(request.GET, user=request.user)
    operations = filters.apply(
        Operation.objects.owned_by(request.user)
        .select_related("requester")
        .prefetch_related("subject")
    )
    page = Paginator(operations, 25).get_page(request.GET.get("page"))
    busy = any(operation.is_active for operation in page)
    query = request.GET.copy()
    query.pop("page", None)
    context = {"page": page, "busy": busy, "filters": filters, "query": query.urlencode()}
    if request.headers.get("HX-Request"):
        return render(request, "operations/_activity_table.html", context)
    return render(request, "operations/activity.html", context)


@login_required
@require_GET
def operation_message(request, pk):
    """How one of the user's operations ended, asked for every 2 s by the message that said it
    was under way (see base.html). While it is queued or running the answer is 204, so the
    message stays as it is and asks again; then it is replaced by the result, which asks no more."""
    operation = get_owned_or_404(Operation.objects.owned_by(request.user), pk)
    if operation.is_active:
        return HttpResponse(status=204)
    return render(request, "operations/_message.html", {"operation": operation})
