"""The admin of alerts: channels (managed by the admin role; their Apprise URLs are entered in a
password field, stored sealed and only ever shown masked, with a "Send test" button), and the
alerts and the outbox, read-only."""

import re

import apprise
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from fleet.alerts.delivery import send_test
from fleet.models import Alert, AlertChannel, AlertKind, Notification

TAG_RE = re.compile(r"^[^=\s][^=]*=.*$")


class AlertChannelForm(forms.ModelForm):
    url = forms.CharField(
        label="Apprise URL",
        required=False,
        max_length=2000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="e.g. slack://TokenA/TokenB/TokenC/#channel or "
        "mailtos://user:pass@smtp.example.com?to=ops@example.com. Stored encrypted and never "
        "shown again; leave empty to keep the stored one.",
    )
    kinds = forms.MultipleChoiceField(
        choices=AlertKind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None chosen: every kind.",
    )

    class Meta:
        model = AlertChannel
        fields = ["name", "url", "kinds", "worker_tag", "enabled"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if not url:
            if not self.instance.url_sealed:
                raise forms.ValidationError("Enter the channel's Apprise URL.")
            return ""
        if not apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory")).add(url):
            # Never echo the URL back: it holds the channel's secrets.
            raise forms.ValidationError(
                "Apprise does not recognise this URL: check its scheme and parts "
                "(https://github.com/caronc/apprise/wiki)."
            )
        return url

    def clean_worker_tag(self) -> str:
        tag = self.cleaned_data["worker_tag"].strip()
        if tag and not TAG_RE.match(tag):
            raise forms.ValidationError("Write the tag as KEY=VALUE, e.g. Team=training.")
        return tag

    def save(self, commit=True):
        if self.cleaned_data.get("url"):
            self.instance.url = self.cleaned_data["url"]
        return super().save(commit)


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    form = AlertChannelForm
    list_display = ["name", "masked_url", "kinds_shown", "worker_tag", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["name"]
    readonly_fields = ["masked_url"]
    fields = ["name", "masked_url", "url", "kinds", "worker_tag", "enabled"]
    actions = ["send_tests"]
    change_form_template = "admin/fleet/alertchannel/change_form.html"

    @admin.display(description="URL")
    def masked_url(self, channel: AlertChannel) -> str:
        return channel.masked_url or "—"

    @admin.display(description="kinds")
    def kinds_shown(self, channel: AlertChannel) -> str:
        return ", ".join(AlertKind(k).label for k in channel.kinds) or "every kind"

    def get_urls(self):
        return [
            path(
                "<int:pk>/send-test/",
                self.admin_site.admin_view(self.send_test_view),
                name="fleet_alertchannel_send_test",
            ),
            *super().get_urls(),
        ]

    def report(self, request: HttpRequest, channel: AlertChannel) -> None:
        error = send_test(channel)
        if error:
            self.message_user(
                request, f"Test to {channel.name} failed: {error}", level=messages.ERROR
            )
        else:
            self.message_user(request, f"Test sent to {channel.name}.", level=messages.SUCCESS)

    def send_test_view(self, request: HttpRequest, pk: int):
        """POST: send a test through this channel now and say how it went."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        channel = get_object_or_404(AlertChannel, pk=pk)
        if not self.has_change_permission(request, channel):
            raise PermissionDenied("You may not manage alert channels.")
        self.report(request, channel)
        return HttpResponseRedirect(reverse("admin:fleet_alertchannel_change", args=[pk]))

    @admin.action(description="Send a test through the selected channels", permissions=["change"])
    def send_tests(self, request: HttpRequest, queryset) -> None:
        for channel in queryset:
            self.report(request, channel)


class ReadOnly:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class NotificationInline(ReadOnly, admin.TabularInline):
    model = Notification
    fields = ["channel", "event", "status", "attempts", "sent_at", "next_attempt_at", "last_error"]
    readonly_fields = fields
    extra = 0


@admin.register(Alert)
class AlertAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["opened_at", "kind", "worker", "message", "resolved_at", "recovery_message"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["message", "worker__name", "worker__instance_id"]
    list_select_related = ["worker"]
    date_hierarchy = "opened_at"
    inlines = [NotificationInline]


@admin.register(Notification)
class NotificationAdmin(ReadOnly, admin.ModelAdmin):
    list_display = [
        "created_at",
        "alert",
        "channel",
        "event",
        "status",
        "attempts",
        "sent_at",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = ["status", "event", "channel"]
    list_select_related = ["alert", "channel"]
