"""The API tests' token client, shared with the search tests."""

from tests.api.conftest import client_for

__all__ = ["client_for"]
