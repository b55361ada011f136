"""URL pieces both hosts share: JWT endpoints, health, OpenAPI docs."""

from django.urls import URLPattern, URLResolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework_simplejwt.views import TokenBlacklistView, TokenObtainPairView, TokenRefreshView, TokenVerifyView

from accounts.auth.throttles import LoginAccountThrottle, LoginIPThrottle
from config.views import health

jwt_urlpatterns: list[URLPattern | URLResolver] = [
    # Brute force: per (tenant, IP) and per (tenant, account); see accounts.auth.throttles.
    path(
        "jwt/create/",
        TokenObtainPairView.as_view(throttle_classes=[LoginIPThrottle, LoginAccountThrottle]),
        name="jwt-create",
    ),
    path("jwt/refresh/", TokenRefreshView.as_view(), name="jwt-refresh"),
    path("jwt/verify/", TokenVerifyView.as_view(), name="jwt-verify"),
    path("jwt/blacklist/", TokenBlacklistView.as_view(), name="jwt-blacklist"),
]


def common_urlpatterns(urlconf: str) -> list[URLPattern | URLResolver]:
    """Health and docs; the schema describes the urlconf of the host serving it."""
    return [
        path("api/health/", health, name="health"),
        path("api/schema/", SpectacularAPIView.as_view(urlconf=urlconf), name="schema"),
        path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    ]
