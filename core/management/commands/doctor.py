from django.core.management.base import BaseCommand, CommandError

from core.health import run_checks


class Command(BaseCommand):
    help = "Report whether the database, the task broker, a worker and libvirt are up."

    def handle(self, *args, **options):
        checks = run_checks()
        for check in checks:
            mark = self.style.SUCCESS("ok  ") if check.ok else self.style.ERROR("DOWN")
            self.stdout.write(f"{mark} {check.name:<9} {check.message}")
        failing = [c.name for c in checks if not c.ok]
        if failing:
            raise CommandError(f"Not healthy: {', '.join(failing)}.")
