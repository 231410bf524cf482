from datetime import timedelta

from django.core.management.base import BaseCommand

from vms.reconciler import reconcile


class Command(BaseCommand):
    help = (
        "Compare the database with libvirt and the storage pools: fail operations whose worker "
        "died, correct VM states, free unneeded layers, remove orphans after a grace period."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--grace-minutes",
            type=int,
            default=None,
            help="How long an orphan must have been seen before it is removed.",
        )

    def handle(self, *args, grace_minutes=None, **options):
        grace = timedelta(minutes=grace_minutes) if grace_minutes is not None else None
        report = reconcile(grace=grace)
        self.stdout.write(report.text())
