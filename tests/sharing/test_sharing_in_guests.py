"""A class on real guests: the teacher's prepared VM, snapshotted and shared by one code, seeds
the students' VMs; revoking stops new VMs and leaves the students' running."""

import pytest

from core.errors import InvalidState
from sharing import services
from sharing.models import Invitation
from snapshots.models import Snapshot
from snapshots.services import snapshot_delete, snapshot_take
from tests import guest
from tests.conftest import succeeded
from vms.models import VM, vm_id_of_lock

pytestmark = pytest.mark.libvirt


def test_students_start_from_the_teachers_snapshot_and_keep_their_vms_after_revoking(
    make_vm, alice, bob, charlie
):
    teacher_vm = make_vm(alice, name="teacher")
    guest.wait_for_boot(teacher_vm)
    guest.run(teacher_vm, "echo lesson-one > /root/exercise; sync; echo written")
    operation = succeeded(snapshot_take(vm=teacher_vm, user=alice, name="lesson 1"))
    snapshot = Snapshot.objects.get(pk=operation.result["snapshot"])

    code = services.invitation_create(snapshot=snapshot, max_uses=30).code
    students = []
    for student in (bob, charlie):
        services.invitation_redeem(code=code, user=student)
        started = succeeded(services.shared_new_vm(snapshot=snapshot, user=student, name="lab"))
        vm = VM.objects.select_related("host", "image", "active_layer").get(
            pk=vm_id_of_lock(started.lock)
        )
        assert vm.owner == student
        assert vm.active_layer.parent_id == snapshot.layer_id  # builds on the teacher's layer
        students.append(vm)
    for vm in students:
        guest.wait_for_boot(vm)
        assert guest.run(vm, "cat /root/exercise") == "lesson-one"

    services.invitation_revoke(invitation=Invitation.objects.get(code=code))
    with pytest.raises(InvalidState):
        services.shared_new_vm(snapshot=snapshot, user=bob, name="lab-2")
    # Deleting the snapshot too frees nothing a student's disk still builds on.
    succeeded(snapshot_delete(snapshot=snapshot, user=alice))

    for vm in students:
        assert vm.host.hypervisor.domain_state(vm.domain_uuid) == "running"
        assert guest.run(vm, "cat /root/exercise; echo mine >> /root/exercise; sync") == (
            "lesson-one"
        )
    assert VM.objects.filter(owner__in=[bob, charlie]).count() == 2
