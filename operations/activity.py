"""The activity page's filters. Kind and state are the operations' own; what an operation acted
on (a VM) is known to the app above that locks it, which registers a filter here from its
`AppConfig.ready` (operations imports no app above it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django import forms

from operations import registry
from operations.models import OperationState, housekeeping_lock


@dataclass(frozen=True)
class LockFilter:
    """A filter by what operations lock: `choices(user)` are (value, label) pairs, and `lock`
    makes a chosen value the lock of its operations."""

    name: str
    label: str
    choices: Callable[..., list[tuple[str, str]]]
    lock: Callable[[str], str]


_lock_filters: list[LockFilter] = []


def lock_filter_register(lock_filter: LockFilter) -> None:
    """Offer `lock_filter` on the activity page (once, however often called)."""
    if all(existing.name != lock_filter.name for existing in _lock_filters):
        _lock_filters.append(lock_filter)


class ActivityFilterForm(forms.Form):
    """The activity page's filters, all optional: a value that is not a choice is left out."""

    kind = forms.ChoiceField(required=False, label="What")
    state = forms.ChoiceField(required=False, label="State")

    def __init__(self, data, *, user):
        super().__init__(data)
        self.fields["kind"].choices = [("", "Anything"), *registry.choices()]
        self.fields["state"].choices = [("", "Any state"), *OperationState.choices]
        for lock_filter in _lock_filters:
            self.fields[lock_filter.name] = forms.ChoiceField(
                required=False,
                label=lock_filter.label,
                choices=[("", f"Any {lock_filter.label}"), *lock_filter.choices(user)],
            )
        # The lock filters first: "on what", then "what" and "how it went".
        self.order_fields([f.name for f in _lock_filters])

    def apply(self, operations):
        """`operations` narrowed by the valid filters (the invalid ones are ignored)."""
        self.is_valid()
        chosen = {name: value for name, value in self.cleaned_data.items() if value}
        if "kind" in chosen:
            operations = operations.filter(kind=chosen["kind"])
        if "state" in chosen:
            operations = operations.filter(state=chosen["state"])
        for lock_filter in _lock_filters:
            if value := chosen.get(lock_filter.name):
                lock = lock_filter.lock(value)
                operations = operations.filter(lock__in=[lock, housekeeping_lock(lock)])
        return operations

    @property
    def ignored(self) -> list[str]:
        """Sentences about the filters left out."""
        return [
            f"{self.fields[name].label} {self.data.get(name)!r} is not one of the choices; "
            "it is ignored."
            for name in self.errors
        ]
