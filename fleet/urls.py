from django.urls import path

from fleet.live import stream
from fleet.web import actions, audit, pages, profile, runs

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
    path("profile/", profile.profile, name="profile"),
    path("profile/tokens/<int:pk>/revoke", profile.revoke_token, name="token_revoke"),
]

# Operator actions and their audit log.
urlpatterns += [
    path("workers/<int:pk>/start", actions.worker_start, name="worker_start"),
    path("workers/<int:pk>/stop", actions.worker_stop, name="worker_stop"),
    path("workers/<int:pk>/terminate", actions.worker_terminate, name="worker_terminate"),
    path("workers/actions", actions.workers_bulk, name="workers_bulk"),
    path("workers/<int:pk>/snooze", actions.worker_snooze, name="worker_snooze"),
    path("workers/<int:pk>/mute", actions.worker_mute, name="worker_mute"),
    path("workers/<int:pk>/auto-pause", actions.worker_auto_pause, name="worker_auto_pause"),
    path("workers/import", actions.workers_import, name="workers_import"),
    *(
        path(
            f"workers/<int:pk>/labs/<str:lab_id>/{verb}",
            actions.lab_verb,
            {"verb": verb},
            name=f"lab_{verb}",
        )
        for verb in ("start", "stop", "wipe", "delete")
    ),
    path("workers/<int:pk>/labs/<str:lab_id>/download", actions.lab_download, name="lab_download"),
    path("workers/<int:pk>/labs/import", actions.lab_import, name="lab_import"),
    path("workers/<int:pk>/licence/register", actions.licence_register, name="licence_register"),
    path(
        "workers/<int:pk>/licence/deregister",
        actions.licence_deregister,
        name="licence_deregister",
    ),
    path("audit/", audit.audit_list, name="audit_list"),
]
