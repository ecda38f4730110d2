from __future__ import annotations

from django import forms

from bordin.measures.questionnaire import MAX_BYTES


class UploadForm(forms.Form):
    file = forms.FileField(
        label="FHIR R4 Questionnaire (JSON)",
        help_text=f"At most {MAX_BYTES // 2**20} MB.",
        error_messages={"required": "Choose a Questionnaire file (.json) to import."},
    )


class EntryForm(forms.Form):
    """The licence and the two switches of one instrument on the clinic's list."""

    licence = forms.CharField(
        label="Licence", required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )
    may_use = forms.BooleanField(label="May be used in this clinic", required=False)
    active = forms.BooleanField(label="Ask it in the check-in", required=False)
