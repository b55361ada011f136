"""The Django admin of a tenant, under the same role rules as the API
(accounts.roles): the forms offer a non-superuser only what it may do, and the
guards (accounts.guards) refuse whatever else reaches the models."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db.models import ManyToManyField, QuerySet
from django.forms import ModelMultipleChoiceField
from django.http import HttpRequest, HttpResponse

from accounts.auth.throttles import PASSWORD_GUESSES, hit, password_guess, retry_after
from accounts.models import AuditEntry, Customer, Profile, User
from accounts.roles import is_superuser


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """The admin's login, counted with jwt/create per (tenant, IP) and per
    (tenant, account) before the password is even looked at."""

    def clean(self) -> dict[str, Any]:
        wait = password_guess(self.request, email=self.data.get("username")) if self.request else None
        if wait is not None:
            raise ValidationError(
                "Too many login attempts. Try again in %(seconds)s seconds.",
                code="throttled",
                params={"seconds": retry_after(wait)},
            )
        return super().clean()


admin.site.login_form = ThrottledAdminLoginForm


class UserByEmailOrUsername(forms.Form):
    """guardian's "add a user" box on an object-permission page: the user's
    email (any case) or username, whichever the admin knows."""

    user = forms.CharField(
        label="User's email or username", max_length=254, help_text="For example jane@acme.com or jane."
    )

    def clean_user(self) -> User:
        given = self.cleaned_data["user"].strip()
        user = User.objects.filter(email__iexact=given).first() or User.objects.filter(username=given).first()
        if user is None:
            raise ValidationError("No user of this tenant has that email or username.", code="does_not_exist")
        return user


# As the admin mounts it: staff only, login first, CSRF-protected.
_admin_password_change = admin.site.admin_view(admin.site.password_change, cacheable=False)


def throttled_password_change(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """The admin's "change password" (a current-password check), counted with
    the account's logins; mounted before ``admin.site.urls``."""
    if request.method == "POST" and request.user.is_authenticated:
        wait = hit(PASSWORD_GUESSES, f"user:{request.user.pk}")
        if wait is not None:
            return HttpResponse(
                f"Too many password attempts. Try again in {retry_after(wait)} seconds.",
                status=429,
                headers={"Retry-After": str(retry_after(wait))},
                content_type="text/plain",
            )
    return _admin_password_change(request, **kwargs)


def _grantable_permissions(request: HttpRequest) -> QuerySet[Permission]:
    """What the admin's user may hand out: everything for a superuser, else
    the model permissions it holds itself."""
    everything = Permission.objects.select_related("content_type")
    if is_superuser(request.user):
        return everything
    held = {tuple(label.split(".", 1)) for label in request.user.get_all_permissions()}
    ids = [p.pk for p in everything if (p.content_type.app_label, p.codename) in held]
    return everything.filter(pk__in=ids)


def _joinable_groups(request: HttpRequest) -> QuerySet[Group]:
    """Groups whose every permission the admin's user holds (joining one grants them)."""
    if is_superuser(request.user):
        return Group.objects.all()
    allowed = set(_grantable_permissions(request).values_list("pk", flat=True))
    refused = Group.objects.filter(permissions__in=Permission.objects.exclude(pk__in=allowed)).values("pk")
    return Group.objects.exclude(pk__in=refused)


class _RoleAwareManyToMany:
    """A non-superuser is offered only the groups and permissions it may
    grant, plus those the edited object has already (so saving an unrelated
    change never silently takes them away)."""

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]
        if obj is not None and obj.pk is not None and not is_superuser(request.user):
            for name in ("groups", "user_permissions", "permissions"):
                field = form.base_fields.get(name)
                if field is not None:
                    held = getattr(obj, name).values("pk")
                    field.queryset = (field.queryset | field.queryset.model.objects.filter(pk__in=held)).distinct()
        return form

    def formfield_for_manytomany(self, db_field: ManyToManyField, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name in ("permissions", "user_permissions"):
            kwargs["queryset"] = _grantable_permissions(request)
        elif db_field.name == "groups":
            kwargs["queryset"] = _joinable_groups(request)
        field: ModelMultipleChoiceField = super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]
        return field


@admin.register(User)
class UserAdmin(_RoleAwareManyToMany, DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "username", "first_name", "last_name", "is_active", "is_staff", "is_superuser"]
    search_fields = ["email", "username", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "username", "password1", "password2")}),)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if not is_superuser(request.user):  # only a superuser makes or unmakes staff and superusers
            fields += ["is_staff", "is_superuser"]
        return fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not is_superuser(request.user):
            return False  # a superuser is changed by a superuser only (the page stays readable)
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not is_superuser(request.user):
            return False
        return super().has_delete_permission(request, obj)


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(_RoleAwareManyToMany, DjangoGroupAdmin):
    pass


admin.site.register(Profile)
admin.site.register(Customer)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_repr", "action", "subject_repr", "permission", "target_repr"]
    list_filter = ["action", "subject_type"]
    search_fields = ["actor_repr", "subject_repr", "permission", "target_repr"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
