"""The REST API under /api/: version 1 of the endpoints, the OpenAPI schema and its docs.

The docs page uses Swagger UI from drf-spectacular-sidecar, served by the portal itself,
so it works without internet like the rest of the portal.
"""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from notifications.api import NotificationViewSet

router = SimpleRouter()
router.register("notifications", NotificationViewSet, basename="notification")

v1 = [
    path("", include("cases.api_urls")),
    *router.urls,
]

urlpatterns = [
    path("v1/", include((v1, "api"), namespace="v1")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
