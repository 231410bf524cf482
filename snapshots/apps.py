from django.apps import AppConfig


class SnapshotsConfig(AppConfig):
    name = "snapshots"
    verbose_name = "Snapshots"

    def ready(self):
        from operations import registry
        from snapshots import runners
        from snapshots.models import SnapshotOperationKind as Kind
        from vms.runners import vm_create_run

        for kind, run in (
            (Kind.TAKE, runners.snapshot_take_run),
            (Kind.RESTORE, runners.snapshot_restore_run),
            (Kind.NEW_VM, vm_create_run),
            (Kind.DELETE, runners.snapshot_delete_run),
        ):
            registry.register(kind, kind.label, job=run, repair=runners.snapshot_operation_repair)
