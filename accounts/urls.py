"""Tenant-host URLs of the accounts app."""

from django.urls import URLPattern, URLResolver, include, path
from rest_framework.routers import SimpleRouter

from accounts import views

auth_router = SimpleRouter()
auth_router.register("users", views.UserViewSet, basename="user")

api_router = SimpleRouter()
api_router.register("profiles", views.ProfileViewSet, basename="profile")
api_router.register("customers", views.CustomerViewSet, basename="customer")
api_router.register("groups", views.GroupViewSet, basename="group")

auth_urlpatterns: list[URLPattern | URLResolver] = [
    path("", include(auth_router.urls)),
    path("jwt/logout_all/", views.LogoutEverywhereView.as_view(), name="jwt-logout-all"),
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
