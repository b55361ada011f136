"""The public host (TENANT_BASE_DOMAIN): platform operators only."""

from django.urls import URLPattern, URLResolver, include, path

from accounts.views import LogoutEverywhereView
from config.urls_common import common_urlpatterns, jwt_urlpatterns

urlpatterns: list[URLPattern | URLResolver] = [
    *common_urlpatterns(__name__),
    path("api/auth/", include(jwt_urlpatterns)),
    path("api/auth/jwt/logout_all/", LogoutEverywhereView.as_view(), name="jwt-logout-all"),
    path("api/platform/", include("tenants.urls")),
]

handler400 = "config.errors.handler400"
handler403 = "config.errors.handler403"
handler404 = "config.errors.handler404"
handler500 = "config.errors.handler500"
