from django.urls import path

from operations import views

urlpatterns = [
    path("activity/", views.activity, name="activity"),
]
