from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts.api.views import SshKeyViewSet
from operations.api.views import OperationViewSet
from schedules.api.views import VMPolicyViewSet
from snapshots.api import browse as snapshot_browse
from snapshots.api.views import PlanViewSet, SnapshotViewSet, VMSnapshotTreeViewSet, me
from vms.api.views import ImageViewSet, VMViewSet

app_name = "api"

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("vms", VMViewSet, basename="vm")
router.register("vms", VMPolicyViewSet, basename="vm-policy")
router.register("vms", VMSnapshotTreeViewSet, basename="vm-snapshot-tree")
router.register("snapshots", SnapshotViewSet, basename="snapshot")
router.register("operations", OperationViewSet, basename="operation")
router.register("images", ImageViewSet, basename="image")
router.register("plans", PlanViewSet, basename="plan")
router.register("ssh-keys", SshKeyViewSet, basename="ssh-key")

urlpatterns = [
    path("me/", me, name="me"),
    # Before the router: "snapshots/import/" would otherwise be read as a snapshot's id.
    path("", include("transfers.api.urls")),
    path("snapshots/<str:id>/files/", snapshot_browse.snapshot_files, name="snapshot-files"),
    path(
        "snapshots/<str:id>/files/content/",
        snapshot_browse.snapshot_file_content,
        name="snapshot-file-content",
    ),
    path("snapshots/<str:id>/compare/", snapshot_browse.snapshot_compare, name="snapshot-compare"),
    path("", include("sharing.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    *router.urls,
]
