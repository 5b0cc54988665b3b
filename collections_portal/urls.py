from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from collections_portal.health import healthz
from collections_portal.metrics import metrics

urlpatterns = [
    # Probes and monitoring: no login page redirects (see health.py and metrics.py).
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("webhooks/", include("notifications.urls")),
    path("notifications/", include("notifications.portal_urls")),
    path("api/", include("collections_portal.api_urls")),
    path(getattr(settings, "ADMIN_URL", "admin/"), admin.site.urls),
    path("legal/", include("legal.urls")),
    path("", include("cases.urls")),
]
