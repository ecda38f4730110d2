"""The client's journey: private links, intake, fit check, re-match requests, goal revisions.

Journey links follow the check-in link rules (:mod:`bordin.web.checkins.models`): a 256-bit
token shown once, stored only as a SHA-256 hash, expiring, revocable and single-use.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django.utils.translation import gettext_lazy as _

from bordin.web.checkins.models import SecureLink
from bordin.web.clinic.models import Client, Clinic, Episode, Goal, Session
from bordin.web.crypto import EncryptedTextField

#: Problem areas a client can tick at intake (stored code, label shown to the client).
PROBLEM_AREAS = (
    ("low_mood", _("Low mood")),
    ("anxiety", _("Anxiety and worry")),
    ("stress", _("Stress")),
    ("relationships", _("Relationships")),
    ("trauma", _("Trauma")),
    ("grief", _("Grief and loss")),
    ("self_esteem", _("Self-esteem")),
    ("sleep", _("Sleep")),
    ("anger", _("Anger")),
    ("other", _("Something else")),
)
FORMATS = (("in_person", _("In person")), ("video", _("Video call")), ("phone", _("Phone call")))
TIMES = (
    ("weekday_morning", _("Weekday mornings")),
    ("weekday_afternoon", _("Weekday afternoons")),
    ("weekday_evening", _("Weekday evenings")),
    ("weekend", _("Weekends")),
)


class JourneyLink(SecureLink):
    """A private link for one step of the journey (intake, fit check or graduation summary)."""

    class Purpose(models.TextChoices):
        INTAKE = "intake", gettext_lazy("Intake")
        FIT_CHECK = "fit_check", gettext_lazy("First-consultation fit check")
        GRADUATION = "graduation", gettext_lazy("Graduation summary")

    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="journey_links")
    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="journey_links")
    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, null=True, blank=True, related_name="journey_links"
    )

    class Meta:
        ordering = ("-created_at", "-pk")
        indexes = (models.Index(fields=["client", "purpose"]),)

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} link for {self.client} ({self.state})"

    @classmethod
    def issue(
        cls,
        purpose: str,
        episode: Episode,
        *,
        session: Session | None = None,
        created_by: object | None = None,
        hours: int | None = None,
    ) -> tuple[JourneyLink, str]:
        """Create a link and return it with its one-time plain token."""
        return cls.create_with_token(
            hours=hours if hours is not None else settings.BORDIN_JOURNEY_LINK_HOURS,
            purpose=purpose,
            client=episode.client,
            episode=episode,
            session=session,
            created_by=created_by,
        )


class Intake(models.Model):
    """What the client told us before the first session. Their own words are encrypted at rest."""

    class PastTherapy(models.TextChoices):
        NONE = "none", _("No, this is my first time")
        HELPFUL = "helpful", _("Yes, and it was helpful")
        UNHELPFUL = "unhelpful", _("Yes, and it was unhelpful or harmful")

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="intakes")
    episode = models.OneToOneField(Episode, on_delete=models.CASCADE, related_name="intake")
    link = models.ForeignKey(
        JourneyLink, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    carried_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    problem_areas = models.JSONField(default=list)
    own_words = EncryptedTextField(blank=True)
    formats = models.JSONField(default=list)
    times = models.JSONField(default=list)
    language = EncryptedTextField(max_length=100, blank=True)
    therapist_preferences = EncryptedTextField(blank=True)
    past_therapy = models.CharField(max_length=10, choices=PastTherapy.choices)
    past_what_happened = EncryptedTextField(blank=True)
    past_different = EncryptedTextField(blank=True)
    submitted_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Intake of {self.client}"

    @property
    def hesitant_start(self) -> bool:
        return self.past_therapy == self.PastTherapy.UNHELPFUL

    def problem_area_labels(self) -> list[str]:
        labels = dict(PROBLEM_AREAS)
        return [str(labels.get(code, code)) for code in self.problem_areas]

    def format_labels(self) -> list[str]:
        labels = dict(FORMATS)
        return [str(labels.get(code, code)) for code in self.formats]

    def time_labels(self) -> list[str]:
        labels = dict(TIMES)
        return [str(labels.get(code, code)) for code in self.times]


class FitCheck(models.Model):
    """The client's view after the first meeting. Shown to the therapist only with consent."""

    class Choice(models.TextChoices):
        CONTINUE = "continue", _("Continue with this therapist")
        SWITCH = "switch", _("Try someone else")
        UNSURE = "unsure", _("I'm not sure yet")

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="fit_checks")
    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="fit_checks")
    link = models.OneToOneField(
        JourneyLink, on_delete=models.SET_NULL, null=True, blank=True, related_name="fit_check"
    )
    heard = models.PositiveSmallIntegerField()
    warmth = models.PositiveSmallIntegerField()
    honest = models.PositiveSmallIntegerField()
    choice = models.CharField(max_length=10, choices=Choice.choices)
    share_with_therapist = models.BooleanField(default=False)
    submitted_at = models.DateTimeField()

    class Meta:
        ordering = ("-submitted_at", "-pk")
        constraints = tuple(
            models.CheckConstraint(
                condition=Q(**{f"{name}__gte": 0}) & Q(**{f"{name}__lte": 10}),
                name=f"fit_check_{name}_0_10",
            )
            for name in ("heard", "warmth", "honest")
        )

    def __str__(self) -> str:
        return f"Fit check of {self.client}"


class RematchRequest(models.Model):
    """A client asked to try someone else; a clinic admin assigns another therapist."""

    class Status(models.TextChoices):
        OPEN = "open", gettext_lazy("Open")
        ASSIGNED = "assigned", gettext_lazy("Assigned")

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="rematch_requests")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="rematch_requests")
    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="+")
    fit_check = models.OneToOneField(
        FitCheck, on_delete=models.SET_NULL, null=True, blank=True, related_name="rematch"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    assigned_at = models.DateTimeField(null=True, blank=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    new_therapist = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    new_client = models.ForeignKey(
        Client, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ("status", "-created_at", "-pk")

    def __str__(self) -> str:
        return f"Re-match request for {self.client} ({self.status})"


class GoalRevision(models.Model):
    """One goal reworded: the old row is kept (inactive) with its ratings; a new row replaces it.

    Ratings are tied to the wording the client rated, since a rating points at a ``Goal`` row.
    """

    old_goal = models.OneToOneField(Goal, on_delete=models.CASCADE, related_name="revised_as")
    new_goal = models.OneToOneField(Goal, on_delete=models.CASCADE, related_name="revision_of")
    revised_at = models.DateTimeField(default=timezone.now)
    revised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.old_goal} -> {self.new_goal}"


class JourneySettings(models.Model):
    """Per-clinic switches for the client's journey."""

    clinic = models.OneToOneField(Clinic, on_delete=models.CASCADE, related_name="journey")
    show_goals_to_client = models.BooleanField(
        default=True, help_text="Show clients their goals and latest ratings after a check-in."
    )

    def __str__(self) -> str:
        return f"Journey settings of {self.clinic}"

    @classmethod
    def for_clinic(cls, clinic_id: int) -> JourneySettings:
        found = cls.objects.filter(clinic_id=clinic_id).first()
        return found if found is not None else cls(clinic_id=clinic_id)

    @classmethod
    def of(cls, clinic: Clinic) -> JourneySettings:
        """:meth:`for_clinic` through the clinic: no query when they were read with it
        (``select_related("clinic__journey")``)."""
        try:
            return clinic.journey
        except cls.DoesNotExist:
            return cls(clinic_id=clinic.pk)


class TherapistProfile(models.Model):
    """Practical facts used to filter a matching shortlist (never personal history)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="therapist_profile"
    )
    formats = models.JSONField(default=list, help_text="Codes from FORMATS.")
    languages = models.JSONField(default=list, help_text="Languages the therapist works in.")
    accepting_new = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"Therapist profile of {self.user}"
