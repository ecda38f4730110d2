from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy

from bordin.measures.questionnaire import MAX_BYTES


class UploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("FHIR R4 Questionnaire (JSON)"),
        help_text=f"At most {MAX_BYTES // 2**20} MB.",
        error_messages={"required": gettext_lazy("Choose a Questionnaire file (.json) to import.")},
    )


class EntryForm(forms.Form):
    """The licence and the two switches of one instrument on the clinic's list."""

    licence = forms.CharField(
        label=gettext_lazy("Licence"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    may_use = forms.BooleanField(label=gettext_lazy("May be used in this clinic"), required=False)
    active = forms.BooleanField(label=gettext_lazy("Ask it in the check-in"), required=False)
