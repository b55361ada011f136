"""Pages for the emailed links, on the tenant's own host.

Small server-rendered pages (Django templates and forms, no JavaScript) that
finish what an email starts: activating an account, choosing a new password,
confirming a new email address. Each validates the link with the serializer
the API uses and calls the same service, so a page and an API call cannot
disagree.

* A GET never changes anything: mail scanners open links, so activation asks
  for one click (a POST with Django's CSRF token).
* A link that is used, forged, or another tenant's answers 404; one that
  expired answers 410 and says how to get a new one. Both are HTML pages.
* The pages carry one-time tokens in their URL: never cached, never indexed,
  and no Referer leaves the host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from rest_framework import serializers

from accounts import selectors, services
from accounts.auth import throttles
from accounts.serializers import (
    PASSWORD_MAX,
    ActivationSerializer,
    EmailResetConfirmSerializer,
    EmailResetLinkSerializer,
    InvitationAcceptSerializer,
    PasswordResetConfirmSerializer,
    PasswordResetLinkSerializer,
)
from accounts.views import links_of, tenant_of
from core.errors import ApplicationError

# What each link is for, as its pages say it.
_PURPOSE = {
    "activation": "activate your account",
    "password_reset": "choose a new password",
    "email_reset": "change your email address",
}


_NEW_PASSWORD = forms.PasswordInput(attrs={"autocomplete": "new-password"})


class _RetypedPassword(forms.Form):
    """A password typed twice: the field ``password_field`` and ``re_<it>``."""

    password_field = "new_password"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, again = data.get(self.password_field), data.get(f"re_{self.password_field}")
        if first and first != again:
            self.add_error(f"re_{self.password_field}", "The two passwords do not match.")
        return data


class PasswordForm(_RetypedPassword):
    new_password = forms.CharField(label="New password", widget=_NEW_PASSWORD, max_length=PASSWORD_MAX)
    re_new_password = forms.CharField(label="New password again", widget=_NEW_PASSWORD, max_length=PASSWORD_MAX)


class EmailForm(forms.Form):
    new_email = forms.EmailField(label="New email address", max_length=254)


def page(request: HttpRequest, template: str, context: dict[str, Any] | None = None, status: int = 200) -> HttpResponse:
    """Render one of these pages with the tenant's name, uncached and unindexed."""
    tenant = tenant_of(request)
    response = render(
        request,
        f"accounts/pages/{template}.html",
        {"site_name": tenant.name if tenant else "the platform", **(context or {})},
        status=status,
    )
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = (
        "same-origin"  # no-referrer would make browsers send "Origin: null", which CSRF refuses
    )
    return response


def link_refused(request: HttpRequest, kind: str, errors: Any) -> HttpResponse:
    """The page for a link that cannot be used: 410 when it expired, else 404."""
    codes = {getattr(e, "code", "") for e in errors.get("token", [])} if isinstance(errors, dict) else set()
    expired = "expired" in codes
    return page(
        request,
        "link_refused",
        {"kind": kind, "purpose": _PURPOSE.get(kind, ""), "expired": expired},
        status=410 if expired else 404,
    )


def _link_user(
    request: HttpRequest, kind: str, serializer_class: type[serializers.Serializer], uid: str, token: str
) -> Any:
    """The user the link names, or the refusal page."""
    link = serializer_class(data={"uid": uid, "token": token})
    if not link.is_valid():
        return link_refused(request, kind, link.errors)
    return link.validated_data["user"]


def _field_errors(errors: Any, *names: str) -> dict[str, list[str]]:
    return {name: [str(e) for e in errors.get(name, [])] for name in names if errors.get(name)}


@require_http_methods(["GET", "HEAD", "POST"])
def activate(request: HttpRequest, uid: str, token: str) -> HttpResponse:
    user = _link_user(request, "activation", ActivationSerializer, uid, token)
    if isinstance(user, HttpResponse):
        return user
    if request.method != "POST":
        return page(request, "activate", {"username": user.username})
    services.user_activate(tenant=tenant_of(request), links=links_of(request), user=user)
    return page(
        request, "done", {"title": "Account activated", "message": "Your account is active: you can log in now."}
    )


def _form_page(
    request: HttpRequest,
    *,
    kind: str,
    link_serializer: type[serializers.Serializer],
    confirm_serializer: type[serializers.Serializer],
    form_class: type[forms.Form],
    template: str,
    finish: Callable[[Any, dict[str, Any]], None],
    done: dict[str, str],
    uid: str,
    token: str,
) -> HttpResponse:
    """A link page with a form: the link is checked first (a refused link
    shows no form), then the form, then the API's serializer with the form's
    values; its messages (the password validators', a taken email) show on
    the form."""
    user = _link_user(request, kind, link_serializer, uid, token)
    if isinstance(user, HttpResponse):
        return user
    form = form_class(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        fields = {k: v for k, v in form.cleaned_data.items() if not k.startswith("re_")}
        confirm = confirm_serializer(data={"uid": uid, "token": token, **fields})
        if confirm.is_valid():
            finish(confirm.validated_data["user"], confirm.validated_data)
            return page(request, "done", done)
        if "token" in confirm.errors or "uid" in confirm.errors:  # spent meanwhile
            return link_refused(request, kind, confirm.errors)
        for name, messages in _field_errors(confirm.errors, *fields).items():
            for message in messages:
                form.add_error(name, message)
    status = 400 if request.method == "POST" else 200
    return page(request, template, {"form": form, "username": user.username}, status=status)


@require_http_methods(["GET", "HEAD", "POST"])
def password_reset(request: HttpRequest, uid: str, token: str) -> HttpResponse:
    return _form_page(
        request,
        kind="password_reset",
        link_serializer=PasswordResetLinkSerializer,
        confirm_serializer=PasswordResetConfirmSerializer,
        form_class=PasswordForm,
        template="password_reset",
        finish=lambda user, data: services.user_reset_password(
            tenant=tenant_of(request), links=links_of(request), user=user, new_password=data["new_password"]
        ),
        done={"title": "Password changed", "message": "Your new password is set: log in with it now."},
        uid=uid,
        token=token,
    )


@require_http_methods(["GET", "HEAD", "POST"])
def email_reset(request: HttpRequest, uid: str, token: str) -> HttpResponse:
    return _form_page(
        request,
        kind="email_reset",
        link_serializer=EmailResetLinkSerializer,
        confirm_serializer=EmailResetConfirmSerializer,
        form_class=EmailForm,
        template="email_reset",
        finish=lambda user, data: services.user_change_email(
            tenant=tenant_of(request), links=links_of(request), user=user, new_email=data["new_email"]
        ),
        done={"title": "Email address changed", "message": "Log in with your new email address from now on."},
        uid=uid,
        token=token,
    )


# --- invitations ----------------------------------------------------------------------------
# /invitation/<token>: the invitee picks a username and a password and
# arrives active in the invited groups (accounts.services.invitation_accept,
# the API's POST /api/auth/invitations/accept/ with the same serializer).


class InvitationForm(_RetypedPassword):
    password_field = "password"
    username = forms.CharField(
        label="Username", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"})
    )
    password = forms.CharField(label="Password", widget=_NEW_PASSWORD, max_length=PASSWORD_MAX)
    re_password = forms.CharField(label="Password again", widget=_NEW_PASSWORD, max_length=PASSWORD_MAX)


def _invitation_refused(request: HttpRequest, error: ApplicationError) -> HttpResponse:
    """410 for an expired invitation; 409 for one that cannot be accepted
    now (the address has an account, the inviter may no longer grant it),
    with the reason; 404 for anything else (used, revoked, resent, unknown,
    another tenant's)."""
    context: dict[str, Any]
    if error.code == selectors.EXPIRED_INVITATION:
        status, context = 410, {"expired": True}
    elif error.status_code == 409:
        status, context = 409, {"reason": error.message}
    else:
        status, context = 404, {}
    return page(request, "invitation_refused", context, status=status)


def _joined(request: HttpRequest, user: Any) -> HttpResponse:
    groups = ", ".join(group.name for group in user.groups.order_by("name"))
    message = f"Your account is active{f' in {groups}' if groups else ''}: log in with {user.email} and your password."
    return page(request, "done", {"title": "Welcome", "message": message})


@require_http_methods(["GET", "HEAD", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows the invitation and the form, and changes nothing; POST
    makes the account. The link is checked first: a refused one shows no form."""
    try:
        invited = selectors.invitation_for_token(token=token)
    except ApplicationError as exc:
        return _invitation_refused(request, exc)
    form = InvitationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        # The API's counter (accounts.auth.throttles.ResetIPThrottle), per IP.
        wait = throttles.hit(throttles.RESET_IP, throttles.client_ip(request))
        if wait is not None:
            message = f"Too many attempts from your address: try again in {throttles.retry_after(wait)} seconds."
            return page(request, "done", {"title": "Too many attempts", "message": message}, status=429)
        if form.is_valid():
            fields = {"username": form.cleaned_data["username"], "password": form.cleaned_data["password"]}
            accept = InvitationAcceptSerializer(data={"token": token, **fields})
            user = None
            try:
                if accept.is_valid():
                    user = services.invitation_accept(
                        tenant=tenant_of(request), links=links_of(request), **accept.validated_data
                    )
            except ApplicationError as exc:  # the token spent meanwhile, or a write refused
                if exc.field not in form.fields:
                    return _invitation_refused(request, exc)
                form.add_error(exc.field, exc.message)
            else:
                if user is not None:
                    return _joined(request, user)
                for name, messages in _field_errors(accept.errors, *fields).items():
                    for message in messages:
                        form.add_error(name, message)
    context = {"form": form, "email": invited.email, "groups": selectors.invitation_group_names(invited)}
    return page(request, "invitation", context, status=400 if request.method == "POST" else 200)
