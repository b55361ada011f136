"""Every tenant host (<slug>.TENANT_BASE_DOMAIN): that tenant's schema only."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from accounts.admin import throttled_password_change
from accounts.urls import auth_urlpatterns, page_urlpatterns
from accounts.urls import urlpatterns as accounts_urlpatterns
from config.urls_common import common_urlpatterns, jwt_urlpatterns

urlpatterns: list[URLPattern | URLResolver] = [
    *common_urlpatterns(__name__),
    path("api/auth/", include(jwt_urlpatterns)),
    path("api/auth/", include(auth_urlpatterns)),
    path("api/", include(accounts_urlpatterns)),
    path("api/", include("catalog.urls")),
    path("", include(page_urlpatterns)),
    path("admin/password_change/", throttled_password_change, name="admin-password-change"),
    path("admin/", admin.site.urls),
]

handler400 = "core.handlers.handler400"
handler403 = "core.handlers.handler403"
handler404 = "core.handlers.handler404"
handler500 = "core.handlers.handler500"
