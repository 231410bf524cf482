import secrets

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django_q.tasks import async_task

from accounts.models import User
from accounts.services import user_create
from vms import hypervisor
from vms.services import host_ensure_default

ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "Prepare a fresh installation: the local host and its storage pool, an admin account "
        "(printing how to log in) and the guest image. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-image", action="store_true", help="Do not build the image.")

    def handle(self, *args, **options):
        try:
            host = host_ensure_default()
        except hypervisor.HypervisorError as exc:
            raise CommandError(f"libvirt is not ready: {exc}") from exc
        self.stdout.write(f"Host {host.name}: {host.libvirt_uri}, pool {host.pool_name!r}.")
        self._ensure_admin()
        if not options["no_image"]:
            call_command("build_image", stdout=self.stdout)
        # Lets the health check see a worker as soon as one starts, not a minute later.
        async_task("operations.tasks.heartbeat", task_name="heartbeat at start")

    def _ensure_admin(self):
        password_file = settings.DATA_DIR / "admin-password"
        if not User.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            user_create(username=ADMIN_USERNAME, password=password, is_staff=True)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.touch(mode=0o600)
            password_file.write_text(password)
            self.stdout.write(self.style.SUCCESS("Created the admin account."))
        admin = User.objects.filter(username=ADMIN_USERNAME, is_superuser=True).first()
        remembered = password_file.read_text().strip() if password_file.exists() else ""
        if admin and remembered and admin.check_password(remembered):
            self.stdout.write(f"Log in as {ADMIN_USERNAME!r} with password {remembered!r}.")
        else:
            self.stdout.write(
                "Log in with your admin account "
                f"(reset a password with `manage.py changepassword {ADMIN_USERNAME}`)."
            )
