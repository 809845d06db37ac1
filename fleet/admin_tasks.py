"""django-q2's task pages, with "Resubmit" only for those who may change tasks.

django-q2 offers its "Resubmit selected tasks" action to anyone who may view the tasks, and it
queues the tasks' functions again. The admin role may only look (see `fleet.roles`), so the
action needs the change permission, which only superusers hold.
"""

from django.contrib import admin
from django.http import HttpRequest
from django_q.admin import FailAdmin, TaskAdmin
from django_q.models import Failure, Success


class ResubmitNeedsChange:
    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            actions.pop("resubmit_task", None)
        return actions


class SuccessAdmin(ResubmitNeedsChange, TaskAdmin):
    pass


class FailureAdmin(ResubmitNeedsChange, FailAdmin):
    pass


for model, model_admin in [(Success, SuccessAdmin), (Failure, FailureAdmin)]:
    admin.site.unregister(model)
    admin.site.register(model, model_admin)
