"""Django admin for workers, labs and collection runs.

People set a worker's identity (name, region, instance id, CML endpoint); everything the
collection observes is read-only here, so an admin edit never fights the next cycle.
Edits and deletions go through the change log like every other change, in the same
transaction, so the live pages hear of them.
"""

from django.contrib import admin
from django.db import transaction

from fleet import (
    admin_alerts,  # noqa: F401  (alert channels, alerts and the outbox)
    admin_tasks,  # noqa: F401  (django-q2's task pages, re-registered)
)
from fleet.models import (
    ActionEntry,
    ApiToken,
    ChangeKind,
    CollectionRun,
    CollectionShard,
    Lab,
    Worker,
)
from fleet.models.changes import record_change, record_changes
from fleet.models.field_groups import OBSERVED, SET_BY_PEOPLE

# Everything else is observed by the collection (and the primary key).
OBSERVED_WORKER_FIELDS = [
    f.name
    for f in Worker._meta.fields
    if f.name != "id" and not any(f.name in group.fields for group in SET_BY_PEOPLE)
]


class LabInline(admin.TabularInline):
    model = Lab
    fields = ["lab_id", "title", "state", "owner", "node_count", "link_count", "modified"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "instance_id",
        "region",
        "status",
        "service_status",
        "cml_version",
        "labs_count",
        "last_polled_at",
    ]
    list_filter = ["region", "status", "service_status", "license_state"]
    search_fields = ["name", "instance_id", "public_ip", "private_ip"]
    readonly_fields = OBSERVED_WORKER_FIELDS
    inlines = [LabInline]
    fieldsets = [
        *(
            (group.title if i else None, {"fields": group.fields})
            for i, group in enumerate(SET_BY_PEOPLE)
        ),
        *((f"{group.title} (observed)", {"fields": group.fields}) for group in OBSERVED),
    ]

    def save_model(self, request, obj, form, change) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if not change:
                record_change(obj.pk, ChangeKind.CREATED)
            elif form.changed_data:
                record_change(obj.pk, ChangeKind.UPDATED, form.changed_data)

    def delete_model(self, request, obj) -> None:
        pk = obj.pk
        with transaction.atomic():
            super().delete_model(request, obj)
            record_change(pk, ChangeKind.DELETED)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            pks = list(queryset.values_list("pk", flat=True))
            super().delete_queryset(request, queryset)
            record_changes((pk, ChangeKind.DELETED, []) for pk in pks)


@admin.register(Lab)
class LabAdmin(admin.ModelAdmin):
    list_display = ["title", "worker", "state", "owner", "node_count", "link_count", "modified"]
    list_filter = ["state", "worker__region"]
    search_fields = ["title", "lab_id", "owner", "worker__name", "worker__instance_id"]
    list_select_related = ["worker"]
    readonly_fields = [f.name for f in Lab._meta.fields if f.name != "id"]

    def has_add_permission(self, request) -> bool:
        return False  # labs come from CML; adding one here would be deleted by the next cycle

    def delete_model(self, request, obj) -> None:
        with transaction.atomic():
            super().delete_model(request, obj)
            record_change(obj.worker_id, ChangeKind.UPDATED, ["labs"])

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            worker_ids = set(queryset.values_list("worker_id", flat=True))
            super().delete_queryset(request, queryset)
            record_changes((pk, ChangeKind.UPDATED, ["labs"]) for pk in sorted(worker_ids))


class CollectionShardInline(admin.TabularInline):
    """A large cycle's shards: which region, how many workers, who finished and how."""

    model = CollectionShard
    fields = ["number", "region", "status", "claimed_at", "finished_at", "message"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CollectionRun)
class CollectionRunAdmin(admin.ModelAdmin):
    inlines = [CollectionShardInline]
    list_display = [
        "started_at",
        "kind",
        "trigger",
        "status",
        "duration",
        "workers_seen",
        "workers_changed",
        "workers_failed",
    ]
    list_filter = ["kind", "trigger", "scope", "status"]
    readonly_fields = [f.name for f in CollectionRun._meta.fields if f.name != "id"]
    date_hierarchy = "started_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ActionEntry)
class ActionEntryAdmin(admin.ModelAdmin):
    """The audit log, read-only: entries are written by the actions alone."""

    list_display = ["started_at", "username", "action", "target", "outcome", "message"]
    list_filter = ["action", "outcome"]
    search_fields = ["username", "target", "message", "lab_id"]
    date_hierarchy = "started_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Everyone's API tokens: seen and revoked (deleted) here; made on the profile page only,
    where the token is shown once to its user."""

    list_display = ["name", "user", "hint", "created_at", "last_used_at", "expires_at"]
    list_filter = ["expires_at"]
    search_fields = ["name", "user__username", "hint"]
    readonly_fields = ["user", "name", "hint", "created_at", "last_used_at", "expires_at"]
    exclude = ["digest"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
