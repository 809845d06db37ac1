from django.urls import path

from fleet import views

app_name = "fleet"

urlpatterns = [
    path("", views.worker_list, name="worker_list"),
    path("workers/<int:pk>/", views.worker_detail, name="worker_detail"),
    path("workers/<int:pk>/refresh", views.worker_refresh, name="worker_refresh"),
    path("workers/refresh", views.fleet_refresh, name="fleet_refresh"),
    path("healthz", views.healthz, name="healthz"),
]
