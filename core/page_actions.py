"""What a page's POST handler does with a service call: run it and turn its answer (or its
refusal) into a message for the person, then go back to a page of ours."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from core.errors import ServiceError

# A message about work in progress carries its operation in its extra tags, so the page can ask
# how that operation is doing and put its result in the message's place (see base.html).
OPERATION_TAG = "operation:"


def attempt(request, action, *, success: str | None = None):
    """Run a service call; on refusal show its sentence and return None."""
    try:
        result = action()
    except ServiceError as exc:
        messages.error(request, exc.message)
        return None
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return None
    if success:
        messages.success(request, success)
    return result


def progress_message(request, operation, text: str) -> None:
    """Tell the person that `operation` is under way; the page replaces it by the result."""
    messages.success(request, text, extra_tags=f"{OPERATION_TAG}{operation.pk}")


def operation_of_message(message) -> str:
    """The id of the operation a message is about (see `progress_message`), else ""."""
    for tag in (message.extra_tags or "").split():
        if tag.startswith(OPERATION_TAG):
            return tag.removeprefix(OPERATION_TAG)
    return ""


def attempt_on_form(form, action) -> tuple[bool, object]:
    """Run a service call for a form; a refusal goes onto the form: a field's error beside that
    field, any other above the form. Returns (True, the call's result) or (False, None)."""
    try:
        return True, action()
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    except ServiceError as exc:
        field = getattr(exc, "field", None)
        form.add_error(field if field in form.fields else None, exc.message)
    return False, None


def back(request, default: str):
    """Redirect to the page named by the form's `next` field, if it is ours, else `default`."""
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(default)
