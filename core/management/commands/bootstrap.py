from django.core.management.base import BaseCommand, CommandError

from core.bootstrap import BootstrapError, Options, steps


class Command(BaseCommand):
    help = (
        "Prepare a fresh installation: the local host and its storage pool, an admin account "
        "(printing how to log in) and the guest image. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-image", action="store_true", help="Do not build the image.")

    def handle(self, *args, **options):
        asked = Options(image=not options["no_image"])
        for step in steps():
            try:
                step(self.stdout, asked)
            except BootstrapError as exc:
                raise CommandError(str(exc)) from exc
