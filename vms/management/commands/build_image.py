from django.core.management.base import BaseCommand, CommandError

from vms import hypervisor
from vms.image_build import ImageBuildError
from vms.image_upload import BUSYBOX_SLUG, image_build_busybox
from vms.models import Image
from vms.services import host_ensure_default


class Command(BaseCommand):
    help = (
        "Build the busybox guest image from Debian packages (kernel, initrd, busybox-static) "
        "and register it on the local host. Without --force, an existing image is kept."
    )

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Build a new one anyway.")

    def handle(self, *args, force=False, **options):
        existing = Image.objects.filter(slug=BUSYBOX_SLUG, is_public=True).first()
        if existing and not force:
            self.stdout.write(f"Image {existing.slug!r} is registered ({existing.name}).")
            return
        try:
            host = host_ensure_default()
            image = image_build_busybox(host=host)
        except (ImageBuildError, hypervisor.HypervisorError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Built and registered image {image.slug!r}."))
