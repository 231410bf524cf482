from django.urls import path

from operations import views

urlpatterns = [
    path("activity/", views.activity, name="activity"),
    path("activity/<uuid:pk>/message/", views.operation_message, name="operation_message"),
]
