"""The profile page: the user's API tokens, created (the token shown once) and revoked."""

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from fleet.models import ApiToken

EXPIRY_CHOICES = [("", "never"), ("7", "7 days"), ("30", "30 days"), ("90", "90 days")]
MAX_TOKENS = 20


@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """Any signed-in user may hold tokens: a token can do only what its user may."""
    tokens = ApiToken.objects.filter(user=request.user)
    context = {"tokens": tokens, "expiry_choices": EXPIRY_CHOICES, "new_token": ""}
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        days = request.POST.get("expires_in_days", "")
        error = ""
        if not name or len(name) > 100 or not name.isprintable():
            error = "Give the token a name of 1 to 100 printable characters."
        elif days not in dict(EXPIRY_CHOICES):
            error = "Choose an expiry from the list."
        elif tokens.count() >= MAX_TOKENS:
            error = f"You have {MAX_TOKENS} tokens already: revoke one first."
        if error:
            context["error"] = error
            return render(request, "fleet/profile.html", context, status=400)
        expires = timezone.now() + timedelta(days=int(days)) if days else None
        _, context["new_token"] = ApiToken.objects.issue(request.user, name, expires)
    return render(request, "fleet/profile.html", context)


@require_POST
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    token.delete()
    messages.success(request, f"Revoked the token {token.name}.")
    return redirect("fleet:profile")
