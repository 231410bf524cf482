"""The installation itself."""

import uuid

from django.db import models


class Installation(models.Model):
    """This installation's identity, made once and kept: everything it makes on a libvirt host
    carries it (its domains' metadata, a claim in its storage pools), and it touches nothing on
    a host that carries another. One row (`key` 1); read it through `core.installation`."""

    key = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"installation {self.uuid}"
