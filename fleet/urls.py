from django.urls import path

from fleet.live import stream
from fleet.web import pages, runs

app_name = "fleet"

urlpatterns = [
    path("", pages.worker_list, name="worker_list"),
    path("workers/<int:pk>/", pages.worker_detail, name="worker_detail"),
    path("workers/<int:pk>/refresh", pages.worker_refresh, name="worker_refresh"),
    path("workers/refresh", pages.fleet_refresh, name="fleet_refresh"),
    path("runs/", runs.run_list, name="run_list"),
    path("runs/<int:pk>/", runs.run_detail, name="run_detail"),
    path("events/", stream.events, name="events"),
    path("healthz", pages.healthz, name="healthz"),
]
