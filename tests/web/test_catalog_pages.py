"""The datasets and models pages list what the user may train with."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.catalog.models import Dataset, ModelArchitecture


def test_the_datasets_page_lists_visible_datasets_with_their_shape(
    client: Client, owner: User, outsider: User, iris: Dataset
) -> None:
    Dataset.objects.create(
        slug="private",
        name="Outsider's secret data",
        owner=outsider,
        uri="file:///x",
        sha256="0" * 64,
        target="y",
    )
    client.force_login(owner)

    response = client.get(reverse("catalog:datasets"))

    assert response.status_code == 200
    assert list(response.context["datasets"]) == [iris]
    content = response.content.decode()
    assert "Iris" in content
    assert ">150<" in content
    assert "setosa, versicolor, virginica" in content
    assert "Outsider's secret data" not in content


def test_the_models_page_lists_models_with_default_hyperparameters(
    client: Client, owner: User, mlp: ModelArchitecture
) -> None:
    client.force_login(owner)

    response = client.get(reverse("catalog:models"))

    assert response.status_code == 200
    assert list(response.context["models"]) == [mlp]
    assert "Multi-layer perceptron" in response.content.decode()
    for key in mlp.default_params:
        assert f"{key}=" in response.content.decode()
