from django.apps import AppConfig


class SnapshotsConfig(AppConfig):
    name = "snapshots"
    verbose_name = "Snapshots"

    def ready(self):
        from operations import registry
        from snapshots import runners, views
        from snapshots.models import SnapshotOperationKind as Kind
        from vms import layers, page_parts, reconciler
        from vms.runners import vm_create_run

        for kind, run in (
            (Kind.TAKE, runners.snapshot_take_run),
            (Kind.RESTORE, runners.snapshot_restore_run),
            (Kind.NEW_VM, vm_create_run),
            (Kind.DELETE, runners.snapshot_delete_run),
        ):
            registry.register(kind, kind.label, run=run, repair=runners.snapshot_operation_repair)
        reconciler.volume_keeper_register(runners.memory_volumes_kept)
        layers.file_name_keeper_register(runners.memory_pairing)

        page_parts.register(dashboard=views.dashboard_part, vm_page=views.vm_page_part)
