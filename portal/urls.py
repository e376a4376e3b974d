from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal.audit import views as audit_views
from portal.lib.static import static_not_found
from portal.ops.prometheus import metrics_view

api_v1: list[URLPattern | URLResolver] = [
    path("", include("portal.jobs.api_urls")),
    path("audit/", include("portal.audit.api_urls")),
    path("", include("portal.catalog.api_urls")),
    path("", include("portal.cluster.api_urls")),
    path("", include("portal.registry.api_urls")),
    path("", include("portal.dashboard.api_urls")),
    path("", include("portal.accounts.api_urls")),
    path("", include("portal.jobs.usage_api_urls")),
    path("", include("portal.experiments.api_urls")),
    path("", include("portal.notifications.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI on the schema, for signed-in users (SERVE_PERMISSIONS). The split view serves
    # its start-up script as a file of its own rather than inline, so a strict CSP allows it.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("audit/", audit_views.audit_log, name="audit"),
    # Prometheus's scrape, behind TRAINYARD_METRICS_TOKEN (docs/deploying.md).
    path("metrics", metrics_view, name="metrics"),
    # WhiteNoise answers for every file it has; anything else under static/ is a plain 404,
    # for anonymous callers too (not a login redirect), however the path is encoded.
    path("static/<path:missing>", static_not_found),
    path("", include("portal.dashboard.urls")),
    path("", include("portal.jobs.urls")),
    path("catalog/", include("portal.catalog.urls")),
    path("cluster/", include("portal.cluster.urls")),
    path("trained-models/", include("portal.registry.urls")),
    path("searches/", include("portal.experiments.urls")),
    path("account/", include("portal.accounts.urls")),
    path("", include("portal.jobs.usage_urls")),
    path("notifications/", include("portal.notifications.urls")),
]
