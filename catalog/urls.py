from django.urls import URLPattern, URLResolver, include, path
from rest_framework.routers import SimpleRouter

from catalog import views

router = SimpleRouter()
router.register("products", views.ProductViewSet, basename="product")

urlpatterns: list[URLPattern | URLResolver] = [path("", include(router.urls))]
