"""Schemathesis against the project's own schema, with every check: no request gets a 5xx or an
answer that breaks the schema, every request the schema allows is accepted (or refused only for a
plan limit, a busy VM, a missing object or throttling), and every request it forbids is refused.

Seeded, so a failure comes back on the next run; enough examples per operation to reach the
boundaries of pages, ids, enums and names.
"""

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, seed, settings

from accounts.services import token_create
from koding_snapshots.wsgi import application
from tests.factories import image_row, vm_row

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)

# POSTs that create a VM are fuzzed with invalid bodies only: a valid one names an image or a
# name that may not exist or be free (a 400 that is right, not a broken contract) and would record
# a VM to build; what they accept is covered by tests/api/test_contract.py.
CREATES_A_VM = [("POST", "/api/vms/"), ("POST", "/api/snapshots/{id}/vms/")]


def _creates_a_vm(ctx) -> bool:
    return (ctx.operation.method.upper(), ctx.operation.path) in CREATES_A_VM


# An import's valid body is a sound disk image, which no schema describes: a generated file is
# rightly refused (400). It too is fuzzed with invalid bodies only; tests/transfers covers what
# it accepts.
UPLOADS_A_DISK = [("POST", "/api/snapshots/import/")]

# Likewise a new SSH key's valid body is a real public key, which a string in a schema does not
# describe; tests/api/test_ssh_keys_api.py covers what it accepts.
ADDS_A_KEY = [("POST", "/api/ssh-keys/")]


def _negative_only(ctx) -> bool:
    route = (ctx.operation.method.upper(), ctx.operation.path)
    return _creates_a_vm(ctx) or route in UPLOADS_A_DISK or route in ADDS_A_KEY


everything_else = schema.exclude(_negative_only)
negative_only = schema.include(_negative_only)
negative_only.config.generation.update(modes=[schemathesis.GenerationMode.NEGATIVE])


FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def alice_vm(alice):
    # Requests run inside the test's transaction, as with Django's test client: the end of a
    # request must not close the connection that holds it.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    vm = vm_row(owner=alice, image=image_row(), name="fuzzed")
    key = token_create(user=alice, name="fuzz")[1]
    yield vm, {"Authorization": f"Bearer {key}"}
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@everything_else.parametrize()
@seed(20261201)
@FUZZ
def test_the_server_takes_what_the_schema_allows_and_nothing_else(case, alice_vm):
    vm, headers = alice_vm
    # Random ids only ever reach the 404; a valid case aims at alice's VM instead, so renames,
    # console lines and actions reach the code behind them.
    if case.meta.generation.mode.is_positive and case.path.startswith("/api/vms/{id}"):
        case.path_parameters["id"] = str(vm.pk)
    case.call_and_validate(headers=headers)


@negative_only.parametrize()
@seed(20261201)
@FUZZ
def test_nothing_is_created_from_a_body_the_schema_forbids(case, alice_vm):
    _vm, headers = alice_vm
    case.call_and_validate(headers=headers)
