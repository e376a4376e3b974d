"""The control plane: a Django project that owns every decision and every durable fact."""

from portal.celery import app as celery_app

__all__ = ["celery_app"]
