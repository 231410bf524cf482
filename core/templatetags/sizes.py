"""`{{ bytes|size }}` in templates: the service's one way of writing a size."""

from django import template

from core.sizes import size_text

register = template.Library()


@register.filter
def size(value) -> str:
    """A number of bytes as "4 GiB", "512 MiB", "11 bytes"; "" for none."""
    if value is None or value == "":
        return ""
    return size_text(int(value))
