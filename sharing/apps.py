from django.apps import AppConfig


class SharingConfig(AppConfig):
    name = "sharing"
    verbose_name = "Sharing"

    def ready(self):
        from snapshots import page_links

        page_links.register(row=page_links.Link("Share", "snapshot_share"))
