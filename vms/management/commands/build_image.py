import signal

from django.core.management.base import BaseCommand, CommandError

from vms import hypervisor
from vms.image_build import ImageBuildError
from vms.image_upload import (
    BUSYBOX_SLUG,
    DEBIAN_SLUG,
    image_build_busybox,
    image_build_debian,
)
from vms.models import Image
from vms.services import host_ensure_default

SLUGS = {"busybox": BUSYBOX_SLUG, "debian": DEBIAN_SLUG}


class Command(BaseCommand):
    help = (
        "Build a guest image from Debian packages and register it on the local host: busybox "
        "(the default: a Debian kernel with a busybox root) or debian (Debian 12 with systemd, "
        "OpenSSH and the guest agent, built with mmdebstrap; a build of the same recipe is "
        "kept and reused). Without --force, an image already registered is kept."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", nargs="?", choices=sorted(SLUGS), default="busybox")
        parser.add_argument("--force", action="store_true", help="Build a new one anyway.")

    def handle(self, *args, kind="busybox", force=False, **options):
        slug = SLUGS[kind]
        existing = Image.objects.filter(slug=slug, is_public=True).first()
        if existing and not force:
            self.stdout.write(f"Image {existing.slug!r} is registered ({existing.name}).")
            return
        # Stopped (bin/run's Ctrl-C sends SIGTERM), a build ends like on an error: its tools
        # are stopped and its folder removed, instead of the process vanishing mid-way.
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            host = host_ensure_default()
            if kind == "debian":
                image, build = image_build_debian(host=host)
                how = "reused a build that took" if build["cached"] else "built in"
                self.stdout.write(f"Debian image: {how} {build['seconds']} s.")
            else:
                image = image_build_busybox(host=host)
        except (ImageBuildError, hypervisor.HypervisorError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.stdout.write(self.style.SUCCESS(f"Built and registered image {image.slug!r}."))


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)
