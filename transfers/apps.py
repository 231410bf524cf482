from django.apps import AppConfig


class TransfersConfig(AppConfig):
    name = "transfers"
    verbose_name = "Exports and imports"

    def ready(self):
        from operations import registry
        from operations.services import periodic_task_register
        from snapshots import page_links
        from snapshots.selectors import usage_bytes_register
        from transfers import jobs, selectors
        from transfers.models import TransferOperationKind as Kind

        for kind, run, done in (
            (Kind.EXPORT, jobs.export_run, "The export of {target} is ready to download."),
            (Kind.IMPORT, jobs.import_run, "Snapshot {target} is imported."),
        ):
            registry.register(
                kind, kind.label, job=run, repair=jobs.transfer_operation_repair, done=done
            )
        periodic_task_register("delete expired exports", "transfers.tasks.expire", minutes=10)
        usage_bytes_register(selectors.export_bytes_for)
        page_links.register(row=page_links.Link("Export", "snapshot_exports"))
        page_links.register(page=page_links.Link("Import a snapshot", "snapshot_import"))
