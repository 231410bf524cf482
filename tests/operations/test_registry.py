"""The kinds of operation: each registered once, by the app that defines it."""

import pytest

from operations import registry
from vms.models import VMOperationKind


def test_a_kind_registered_again_with_another_job_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "_TYPES", dict(registry._TYPES))
    stop = registry.registered(VMOperationKind.STOP)
    with pytest.raises(registry.DuplicateKind, match="registered already"):
        registry.register(stop.kind, stop.label, job=lambda operation: {}, repair=stop.repair)
    assert registry.registered(VMOperationKind.STOP) is stop


def test_registering_the_same_kind_again_changes_nothing(monkeypatch):
    monkeypatch.setattr(registry, "_TYPES", dict(registry._TYPES))
    stop = registry.registered(VMOperationKind.STOP)
    registry.register(stop.kind, stop.label, job=stop.job, repair=stop.repair, done=stop.done)
    assert registry.registered(VMOperationKind.STOP) is stop
