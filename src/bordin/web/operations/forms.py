"""Forms of the operations pages; every error says what to fix."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from bordin.web.clinic.models import Episode, StaffProfile, validate_time_zone
from bordin.web.operations import clients, staff
from bordin.web.operations.imports import LANGUAGE, MOBILE
from bordin.web.operations.models import ClientEmailDigest, ClinicSettings


def _user_label(obj: Any) -> str:
    full = obj.get_full_name()
    return f"{full} ({obj.get_username()})" if full else str(obj.get_username())


class _UserChoice(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return _user_label(obj)


class _UsersChoice(forms.ModelMultipleChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return _user_label(obj)


def _therapists_only(clinic_id: int) -> Any:
    return (
        get_user_model()
        ._default_manager.filter(
            staff__clinic_id=clinic_id, staff__role=StaffProfile.Role.THERAPIST, is_active=True
        )
        .order_by("username")
    )


class InviteForm(forms.Form):
    first_name = forms.CharField(max_length=150, label=_("First name"))
    last_name = forms.CharField(max_length=150, required=False, label=_("Last name"))
    email = forms.EmailField(
        label=_("Email"),
        error_messages={"invalid": _("Enter an email address like name@clinic.org.")},
    )
    role = forms.ChoiceField(choices=StaffProfile.Role.choices, label=_("Role"))
    supervisees = _UsersChoice(
        queryset=get_user_model()._default_manager.none(),
        required=False,
        label=_("Supervisees"),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("For a supervisor: the therapists they supervise."),
    )

    def __init__(self, *args: Any, clinic_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["supervisees"].queryset = _therapists_only(clinic_id)  # type: ignore[attr-defined]

    def clean_email(self) -> str:
        email = str(self.cleaned_data["email"]).strip().lower()
        if staff.username_taken(email):
            raise forms.ValidationError(_("Someone already has an account with this email."))
        return email


class StaffForm(forms.Form):
    role = forms.ChoiceField(choices=StaffProfile.Role.choices, label=_("Role"))
    supervisees = _UsersChoice(
        queryset=get_user_model()._default_manager.none(),
        required=False,
        label=_("Supervisees"),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Only a supervisor keeps supervisees."),
    )

    def __init__(self, *args: Any, clinic_id: int, exclude: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["supervisees"].queryset = _therapists_only(clinic_id).exclude(  # type: ignore[attr-defined]
            pk=exclude
        )


class ClientForm(forms.Form):
    display_name = forms.CharField(
        label=_("Display name"),
        max_length=120,
        help_text=_("How staff pages name the client (initials are fine)."),
    )
    therapist = _UserChoice(
        queryset=get_user_model()._default_manager.none(), empty_label=None, label=_("Therapist")
    )
    contact_email = forms.EmailField(
        label=_("Contact email"),
        required=False,
        error_messages={"invalid": _("Enter an email address like name@example.org.")},
    )
    contact_mobile = forms.CharField(max_length=30, required=False, label=_("Mobile number"))
    preferred_language = forms.CharField(
        label=_("Preferred language"),
        max_length=10,
        initial="en",
        help_text=_("A language code such as en, de or pt-BR."),
    )
    time_zone = forms.CharField(
        max_length=64,
        required=False,
        label=_("Time zone"),
        help_text=_(
            "The client's time zone, e.g. America/Mexico_City: their pages and the quiet hours "
            "of their reminders use it. Empty: the clinic's."
        ),
        validators=[validate_time_zone],
    )
    consent_email = forms.BooleanField(required=False, label=_("Consents to be contacted by email"))
    consent_sms = forms.BooleanField(required=False, label=_("Consents to be contacted by SMS"))

    def __init__(
        self,
        *args: Any,
        clinic_id: int,
        therapist: Any = None,
        client_pk: int | None = None,
        with_therapist: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.clinic_id, self.client_pk = clinic_id, client_pk
        if not with_therapist:
            del self.fields["therapist"]
        elif therapist is not None:  # a therapist adds a client for themself
            self.fields["therapist"].queryset = get_user_model()._default_manager.filter(  # type: ignore[attr-defined]
                pk=therapist.pk
            )
        else:
            self.fields["therapist"].queryset = clients.therapists_of(clinic_id)  # type: ignore[attr-defined]

    def clean_contact_email(self) -> str:
        email = str(self.cleaned_data.get("contact_email") or "").strip().lower()
        dup = ClientEmailDigest.duplicates(self.clinic_id, email, exclude=self.client_pk)
        if dup:
            raise forms.ValidationError(
                f"Client {dup[0]} of this clinic already has this email: "
                "open that client instead of adding them twice."
            )
        return email

    def clean_contact_mobile(self) -> str:
        mobile = str(self.cleaned_data.get("contact_mobile") or "").strip()
        if mobile and not MOBILE.match(mobile):
            raise forms.ValidationError(_("Enter a phone number: digits, spaces, + ( ) and -."))
        return mobile

    def clean_preferred_language(self) -> str:
        language = str(self.cleaned_data.get("preferred_language") or "").strip()
        if not LANGUAGE.match(language):
            raise forms.ValidationError(_("Enter a language code such as en, de or pt-BR."))
        return language


class ReassignForm(forms.Form):
    therapist = _UserChoice(
        queryset=get_user_model()._default_manager.none(), empty_label=None, label=_("Therapist")
    )

    def __init__(self, *args: Any, clinic_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["therapist"].queryset = clients.therapists_of(clinic_id)  # type: ignore[attr-defined]


class CloseEpisodeForm(forms.Form):
    ending_reason = forms.ChoiceField(
        label=_("Ending reason"),
        choices=Episode.EndingReason.choices,
        error_messages={"required": _("Choose why the episode ended.")},
    )
    end = forms.DateField(
        initial=timezone.localdate,
        widget=forms.DateInput(attrs={"type": "date"}),
        label=_("Last day"),
    )

    def __init__(self, *args: Any, episode: Episode | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.episode = episode

    def clean_end(self) -> Any:
        end = self.cleaned_data["end"]
        if self.episode is not None and end < self.episode.start:
            raise forms.ValidationError(
                _("The episode started on %(date)s; choose that day or later.")
                % {"date": date_format(self.episode.start, "j M Y")}
            )
        if end > timezone.localdate():
            raise forms.ValidationError(_("The last day cannot be in the future."))
        return end


class SecondFactorForm(forms.Form):
    """A fresh code, asked for when the second factor is older than 10 minutes."""

    code = forms.CharField(
        max_length=20,
        required=False,
        label=_("Code from your authenticator app"),
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class EraseForm(SecondFactorForm):
    confirm = forms.CharField(
        max_length=200,
        label=_("Type ERASE to confirm"),
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def clean_confirm(self) -> str:
        value = str(self.cleaned_data["confirm"]).strip()
        if value != "ERASE":
            raise forms.ValidationError(_("Type ERASE in capital letters to confirm."))
        return value


class SettingsForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = ClinicSettings
        fields = ("retention_years", "keep_scores_on_erasure", "audit_retention_years")
        labels: ClassVar[dict[str, Any]] = {
            "retention_years": _("Retention years"),
            "keep_scores_on_erasure": _("Keep scores on erasure"),
            "audit_retention_years": _("Audit retention years"),
        }
        help_texts: ClassVar[dict[str, Any]] = {
            "retention_years": _(
                "Erase a client this many years after their last episode closed "
                "(`bordin purge`); 0 keeps records until erased by hand."
            ),
            "keep_scores_on_erasure": _(
                "On erasure keep the client's scores, de-identified, for the clinic's aggregate "
                "statistics; otherwise every record of the client is deleted."
            ),
            "audit_retention_years": _(
                "How long audit events are kept (0: for as long as the database)."
            ),
        }


class ImportForm(forms.Form):
    file = forms.FileField(required=False, label=_("CSV file"))
    text = forms.CharField(required=False, widget=forms.HiddenInput)
