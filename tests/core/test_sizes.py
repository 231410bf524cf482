"""Sizes read the same everywhere: binary units as entered ("4 GiB"), bytes spelled out once."""

import pytest
from django.template import Context, Template

from core.sizes import size_text

KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (11, "11 bytes"),
        (1023, "1023 bytes"),
        (KIB, "1 KiB"),
        (1536, "1.5 KiB"),
        (512 * MIB, "512 MiB"),
        (4 * GIB, "4 GiB"),
        (3 * GIB // 2, "1.5 GiB"),
        (10 * GIB, "10 GiB"),
        (GIB - 1, "1 GiB"),
        (MIB - 1, "1 MiB"),
        (2 * TIB, "2 TiB"),
        (None, ""),
    ],
)
def test_a_size_is_written_in_binary_units_as_entered(size, text):
    assert size_text(size) == text


def test_templates_write_sizes_with_the_same_helper():
    rendered = Template("{% load sizes %}{{ a|size }}, {{ b|size }}, [{{ c|size }}]").render(
        Context({"a": 4 * GIB, "b": 11, "c": None})
    )
    assert rendered == "4 GiB, 11 bytes, []"
