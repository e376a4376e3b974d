"""The registry's page forms: registering a job, and the "try it" prediction box."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from portal.lib.text import validate_safe_text
from workers.messages import PREDICT_MAX_ROWS

# The box on a version's page is for trying a few rows; the API takes the full batch.
TRY_MAX_CHARS = 200_000


class RegisterForm(forms.Form):
    name = forms.CharField(max_length=200, validators=[validate_safe_text])


class TryItForm(forms.Form):
    rows = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "mono"}),
        max_length=TRY_MAX_CHARS,
        help_text=f"A JSON list of rows (at most {PREDICT_MAX_ROWS}), as the dataset has them.",
    )

    def clean_rows(self) -> Any:
        raw = self.cleaned_data["rows"]
        try:
            rows = json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f"This is not JSON: {exc}") from exc
        return rows
