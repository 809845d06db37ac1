from django.urls import path

from fleet import live_stream, views, views_runs

app_name = "fleet"

urlpatterns = [
    path("", views.worker_list, name="worker_list"),
    path("workers/<int:pk>/", views.worker_detail, name="worker_detail"),
    path("workers/<int:pk>/refresh", views.worker_refresh, name="worker_refresh"),
    path("workers/refresh", views.fleet_refresh, name="fleet_refresh"),
    path("runs/", views_runs.run_list, name="run_list"),
    path("runs/<int:pk>/", views_runs.run_detail, name="run_detail"),
    path("events/", live_stream.events, name="events"),
    path("healthz", views.healthz, name="healthz"),
]
