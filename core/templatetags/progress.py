"""`{{ message|operation_id }}` in templates: the operation a message about work in progress is
about (see `core.page_actions.progress_message`), "" for any other message."""

from django import template

from core.page_actions import operation_of_message

register = template.Library()


@register.filter
def operation_id(message) -> str:
    return operation_of_message(message)
