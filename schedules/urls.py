from django.urls import path

from schedules import views

urlpatterns = [
    path("vms/<uuid:pk>/policy/", views.vm_policy, name="vm_policy"),
    path("vms/<uuid:pk>/policy/delete/", views.vm_policy_delete, name="vm_policy_delete"),
]
