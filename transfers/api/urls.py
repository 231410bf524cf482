from django.urls import path
from rest_framework.routers import DefaultRouter

from transfers.api.views import ExportViewSet, SnapshotExportView, SnapshotImportView

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("exports", ExportViewSet, basename="export")

urlpatterns = [
    path("snapshots/import/", SnapshotImportView.as_view(), name="snapshot-import"),
    path("snapshots/<str:id>/exports/", SnapshotExportView.as_view(), name="snapshot-exports"),
    *router.urls,
]
