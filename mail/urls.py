from django.urls import path

from mail import views

urlpatterns = [
    path("emails/", views.FleetEmailListView.as_view(), name="platform-email-list"),
    path("emails/<int:pk>/retry/", views.FleetEmailRetryView.as_view(), name="platform-email-retry"),
]
