from django.urls import path

from tenants import views

app_name = "platform"
urlpatterns = [
    path("tenants/", views.TenantListCreateView.as_view(), name="tenant-list"),
    path("tenants/<slug:slug>/", views.TenantDetailView.as_view(), name="tenant-detail"),
    path("tenants/<slug:slug>/placement/", views.TenantPlacementView.as_view(), name="tenant-placement"),
    path("tenants/<slug:slug>/domains/", views.TenantDomainsView.as_view(), name="tenant-domains"),
    path("tenants/<slug:slug>/domains/<str:domain>/", views.TenantDomainDetailView.as_view(), name="tenant-domain"),
]
