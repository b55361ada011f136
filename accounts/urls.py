"""Tenant-host URLs of the accounts app."""

from django.urls import URLPattern, URLResolver, include, path, re_path
from rest_framework.routers import SimpleRouter

from accounts import pages, views

auth_router = SimpleRouter()
auth_router.register("users", views.UserViewSet, basename="user")

api_router = SimpleRouter()
api_router.register("profiles", views.ProfileViewSet, basename="profile")
api_router.register("customers", views.CustomerViewSet, basename="customer")
api_router.register("groups", views.GroupViewSet, basename="group")
api_router.register("invitations", views.InvitationViewSet, basename="invitation")

auth_urlpatterns: list[URLPattern | URLResolver] = [
    path("", include(auth_router.urls)),
    path("jwt/logout_all/", views.LogoutEverywhereView.as_view(), name="jwt-logout-all"),
    path("invitations/accept/", views.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("invitations/preview/", views.InvitationPreviewView.as_view(), name="invitation-preview"),
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("", include(api_router.urls)),
    path("permissions/", views.PermissionListView.as_view(), name="permission-list"),
    path("users/<str:pk>/permissions/", views.UserPermissionsView.as_view(), name="user-permissions"),
    path("audit/", views.AuditListView.as_view(), name="audit-list"),
    path("emails/", views.EmailListView.as_view(), name="email-list"),
    path("emails/<int:pk>/retry/", views.EmailRetryView.as_view(), name="email-retry"),
    path("tenant/", views.TenantSettingsView.as_view(), name="tenant-settings"),
]

# The emailed links' pages (accounts.pages), at the paths of the default link
# templates (settings ACCOUNT_*_URL); a trailing slash is optional.
_UID_TOKEN = r"(?P<uid>[^/]{1,64})/(?P<token>[^/]{1,128})/?$"
page_urlpatterns: list[URLPattern | URLResolver] = [
    re_path(rf"^activate/{_UID_TOKEN}", pages.activate, name="page-activate"),
    re_path(rf"^password/reset/confirm/{_UID_TOKEN}", pages.password_reset, name="page-password-reset"),
    re_path(rf"^email/reset/confirm/{_UID_TOKEN}", pages.email_reset, name="page-email-reset"),
    re_path(r"^invitation/(?P<token>[^/]{1,128})/?$", pages.invitation, name="page-invitation"),
]
