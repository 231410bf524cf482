from django.apps import AppConfig


class VmsConfig(AppConfig):
    name = "vms"
    verbose_name = "Virtual machines"

    def ready(self):
        from core import bootstrap, health
        from vms.bootstrap import host, image
        from vms.health import check_libvirt

        health.register(check_libvirt, order=20)
        bootstrap.register(host, order=10)
        bootstrap.register(image, order=30)
