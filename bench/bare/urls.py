from django.urls import path
from rest_framework.generics import ListAPIView

from catalog.models import Product
from catalog.serializers import ProductSerializer
from core.pagination import Pagination

urlpatterns = [
    path(
        "api/products/",
        ListAPIView.as_view(
            queryset=Product.objects.order_by("id"), serializer_class=ProductSerializer, pagination_class=Pagination
        ),
    ),
]
