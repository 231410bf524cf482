"""Walking a disk's chain of layers (the one walk every reader of a chain uses)."""

import pytest

from core.errors import InvalidState
from tests.factories import host_row, layer_row
from vms.layers import layer_chain
from vms.models import Layer


def test_the_chain_is_the_layer_and_those_under_it_bottom_first(db):
    host = host_row()
    base = layer_row(host=host)
    middle = layer_row(host=host, parent=base)
    top = layer_row(host=host, parent=middle)
    assert layer_chain(top) == [base, middle, top]


def test_a_chain_that_loops_is_refused_instead_of_walked_forever(db):
    host = host_row()
    first = layer_row(host=host)
    second = layer_row(host=host, parent=first)
    Layer.objects.filter(pk=first.pk).update(parent=second)
    with pytest.raises(InvalidState, match="loops"):
        layer_chain(second)
