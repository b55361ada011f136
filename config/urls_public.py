"""The public host (TENANT_BASE_DOMAIN): platform operators only."""

from django.urls import URLPattern, URLResolver, include, path

from accounts.views import LogoutEverywhereView
from config.urls_common import common_urlpatterns, jwt_urlpatterns

urlpatterns: list[URLPattern | URLResolver] = [
    *common_urlpatterns(__name__),
    path("api/auth/", include(jwt_urlpatterns)),
    path("api/auth/jwt/logout_all/", LogoutEverywhereView.as_view(), name="jwt-logout-all"),
    path("api/platform/", include("tenants.urls")),
    path("api/platform/", include("mail.urls")),
]

handler400 = "core.handlers.handler400"
handler403 = "core.handlers.handler403"
handler404 = "core.handlers.handler404"
handler500 = "core.handlers.handler500"
