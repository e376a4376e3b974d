"""Read-only Django admin classes for the models whose writes must go through services.

State moves (a job's, an attempt's, a node's) are conditional updates with events on commit;
a form in the admin would bypass all of that. So these models are shown, filtered and searched
in the admin but never added, changed or deleted there; the operator's escape hatches are
admin actions that call the services.
"""

from __future__ import annotations

from typing import TypeVar

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

_M = TypeVar("_M", bound=Model)
_C = TypeVar("_C", bound=Model)
_P = TypeVar("_P", bound=Model)


class ReadOnlyAdmin(admin.ModelAdmin[_M]):
    """A model admin that may view and run actions, but never add, change or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False


class ReadOnlyTabularInline(admin.TabularInline[_C, _P]):
    """An inline that lists related rows (with a link to each) and edits none of them."""

    extra = 0
    show_change_link = True
    can_delete = False

    # django-stubs' own InlineModelAdmin overrides this with the extra `obj` the same way.
    def has_add_permission(self, request: HttpRequest, obj: _P | None) -> bool:  # type: ignore[override]
        return False

    def has_change_permission(self, request: HttpRequest, obj: _P | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: _P | None = None) -> bool:
        return False
