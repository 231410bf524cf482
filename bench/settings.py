"""The service's settings, plus a bare view to compare the API against."""

from koding_snapshots.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
