from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = "Operations"

    def ready(self):
        post_migrate.connect(_ensure_schedules, sender=self)


def _ensure_schedules(**kwargs):
    from operations.services import schedules_ensure

    schedules_ensure(using=kwargs.get("using", "default"))
