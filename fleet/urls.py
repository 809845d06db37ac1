from django.urls import path

from fleet import views

app_name = "fleet"

urlpatterns = [
    path("", views.worker_list, name="worker_list"),
    path("workers/<int:pk>/", views.worker_detail, name="worker_detail"),
]
