from django.apps import AppConfig


class VmsConfig(AppConfig):
    name = "vms"
    verbose_name = "Virtual machines"

    def ready(self):
        from core import bootstrap, health
        from vms.bootstrap import host, image
        from vms.health import check_hosts

        health.register(check_hosts, order=20)
        from core.errors import register_address_names
        from vms.selectors import host_address_names

        register_address_names(host_address_names)
        bootstrap.register(host, order=10)
        bootstrap.register(image, order=30)
        _register_operations()
        from operations.services import periodic_task_register

        periodic_task_register(
            "flatten deep disk chains", "vms.tasks.flatten_deep_chains", minutes=10
        )
        periodic_task_register(
            "merge layers no snapshot needs", "vms.tasks.merge_layers", minutes=5
        )
        periodic_task_register("reconcile", "vms.tasks.reconcile", minutes=5)
        periodic_task_register("check hosts", "vms.tasks.check_hosts", minutes=1)

        from django.db.models.signals import post_delete

        from vms.models import VM

        post_delete.connect(_vm_deleted, sender=VM, dispatch_uid="vms.vm_deleted")
        from operations.activity import LockFilter, lock_filter_register
        from vms.models import vm_lock

        lock_filter_register(LockFilter("vm", "VM", _vm_choices, vm_lock))


def _vm_choices(user) -> list[tuple[str, str]]:
    """The VMs the activity page can narrow to: the user's."""
    from vms.models import VM

    return [(str(pk), name) for pk, name in VM.objects.owned_by(user).values_list("pk", "name")]


def _vm_deleted(sender, instance, **kwargs):
    """A deleted VM's operations stay in the activity log, without a link to it."""
    from operations.services import operations_forget

    operations_forget(instance, lock=instance.lock)


def _register_operations():
    from operations import registry
    from vms import jobs
    from vms.models import VMOperationKind as Kind

    for kind, run, done in (
        (Kind.CREATE, jobs.vm_create_run, "VM {target} is created."),
        (Kind.START, jobs.vm_start_run, "VM {target} is running."),
        (Kind.STOP, jobs.vm_stop_run, "VM {target} is stopped."),
        (Kind.FORCE_STOP, jobs.vm_force_stop_run, "VM {target} is off."),
        (Kind.REBOOT, jobs.vm_reboot_run, "VM {target} is rebooted."),
        (Kind.DELETE, jobs.vm_delete_run, "VM {target} is deleted; its snapshots are kept."),
        (Kind.REPAIR, jobs.vm_repair_run, "VM {target} is repaired, ready to start."),
    ):
        registry.register(kind, kind.label, job=run, repair=jobs.vm_operation_repair, done=done)
    registry.register(
        Kind.MOVE,
        Kind.MOVE.label,
        job=jobs.vm_move_run,
        repair=jobs.vm_move_repair,
        done="Moved VM {target}.",
    )
    # The service's own housekeeping: it gives way to the owner's operations on the VM.
    registry.register(
        Kind.FLATTEN,
        Kind.FLATTEN.label,
        job=jobs.vm_flatten_run,
        repair=jobs.vm_operation_repair,
        housekeeping=True,
        done="The disk of {target} is flattened.",
    )
    registry.register(
        Kind.MERGE,
        Kind.MERGE.label,
        job=jobs.layer_merge_run,
        repair=jobs.layer_merge_repair,
        housekeeping=True,
        done="The disk layers of {target} are merged.",
    )
