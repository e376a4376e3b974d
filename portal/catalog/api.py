"""The catalog REST API: the datasets and model architectures a user may train with."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.permissions import IsAuthenticated

from portal.accounts.authentication import TokenScopePermission
from portal.catalog import selectors
from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.serializers import DatasetSerializer, ModelArchitectureSerializer

API_PERMISSIONS = [IsAuthenticated, TokenScopePermission]


@extend_schema(summary="List the datasets you can see")
class DatasetListApi(generics.ListAPIView[Dataset]):
    permission_classes = API_PERMISSIONS
    serializer_class = DatasetSerializer

    def get_queryset(self) -> QuerySet[Dataset]:
        return selectors.datasets_visible_to(self.request.user).select_related("owner", "team")


@extend_schema(summary="List the model architectures you can see")
class ModelListApi(generics.ListAPIView[ModelArchitecture]):
    permission_classes = API_PERMISSIONS
    serializer_class = ModelArchitectureSerializer

    def get_queryset(self) -> QuerySet[ModelArchitecture]:
        return selectors.models_visible_to(self.request.user).select_related("owner", "team")
