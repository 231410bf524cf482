from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = "Operations"

    def ready(self):
        from core import bootstrap, health
        from operations.bootstrap import first_heartbeat
        from operations.health import check_worker

        health.register(check_worker, order=10)
        bootstrap.register(first_heartbeat, order=40)
        post_migrate.connect(_ensure_schedules, sender=self)


def _ensure_schedules(**kwargs):
    from django.core.management import call_command
    from django.db import connections

    from operations.services import periodic_tasks_ensure

    using = kwargs.get("using", "default")
    # A partial `migrate` (one app, to a named migration) may not have made the queue's tables.
    if "django_q_schedule" in connections[using].introspection.table_names():
        periodic_tasks_ensure(using=using)
    # Without Redis the cache (throttle and rate counters) lives in a table of the database.
    call_command("createcachetable", database=using, verbosity=0)
