"""The public host (TENANT_BASE_DOMAIN): platform operators only."""

from django.urls import URLPattern, URLResolver, include, path

from accounts import views as accounts_views
from config.urls_common import common_urlpatterns, jwt_urlpatterns

urlpatterns: list[URLPattern | URLResolver] = [
    *common_urlpatterns(__name__),
    path("api/auth/", include(jwt_urlpatterns)),
    path("api/auth/jwt/logout_all/", accounts_views.LogoutEverywhereView.as_view(), name="jwt-logout-all"),
    # The operators' own accounts.
    path("api/auth/users/me/", accounts_views.OperatorMeView.as_view(), name="operator-me"),
    path(
        "api/auth/users/set_password/", accounts_views.OperatorSetPasswordView.as_view(), name="operator-set-password"
    ),
    path("api/platform/", include("tenants.urls")),
    path("api/platform/", include("mail.urls")),
    # Superuser operators manage the operators.
    path("api/platform/operators/", accounts_views.OperatorListCreateView.as_view(), name="operator-list"),
    path("api/platform/operators/<str:pk>/", accounts_views.OperatorDetailView.as_view(), name="operator-detail"),
    # Support actions in a tenant.
    path(
        "api/platform/tenants/<slug:slug>/support/password-reset/",
        accounts_views.TenantSupportPasswordResetView.as_view(),
        name="tenant-support-password-reset",
    ),
]

handler400 = "core.handlers.handler400"
handler403 = "core.handlers.handler403"
handler404 = "core.handlers.handler404"
handler500 = "core.handlers.handler500"
