from django.apps import AppConfig


class SnapshotsConfig(AppConfig):
    name = "snapshots"
    verbose_name = "Snapshots"

    def ready(self):
        from operations import registry
        from snapshots import jobs
        from snapshots.models import SnapshotOperationKind as Kind
        from vms.jobs import vm_create_run

        # Their targets read "<VM>: <snapshot>", "<new VM> from <snapshot>", "<snapshot>".
        for kind, run, done in (
            (Kind.TAKE, jobs.snapshot_take_run, "Snapshot taken ({target})."),
            (
                Kind.RESTORE,
                jobs.snapshot_restore_run,
                "Snapshot restored ({target}); the disk before it is kept as an undo snapshot.",
            ),
            (Kind.NEW_VM, vm_create_run, "VM created ({target})."),
            (Kind.DELETE, jobs.snapshot_delete_run, "Snapshot {target} is deleted."),
            (Kind.FORK, jobs.snapshot_fork_run, "Forked ({target}); each resumed where it was."),
        ):
            registry.register(
                kind, kind.label, job=run, repair=jobs.snapshot_operation_repair, done=done
            )

        from django.db.models.signals import post_delete

        from snapshots.models import Snapshot

        post_delete.connect(_snapshot_deleted, sender=Snapshot, dispatch_uid="snapshots.deleted")


def _snapshot_deleted(sender, instance, **kwargs):
    """A deleted snapshot's operations stay in the activity log, without a link to it."""
    from operations.services import operations_forget

    operations_forget(instance)
