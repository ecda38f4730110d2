"""URLs. ``/c/<token>`` and ``/login/`` are contracts (check-in links and browser tests)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from bordin.web.accounts import views as account_views
from bordin.web.alerts import views as alert_views
from bordin.web.api import views as api_views
from bordin.web.api.v1 import api as api_v1
from bordin.web.audit import views as audit_views
from bordin.web.checkins import views as checkin_views
from bordin.web.clinic import exports, outcomes
from bordin.web.clinic import views as clinic_views
from bordin.web.delivery import views as delivery_views
from bordin.web.fhir import views as fhir_views
from bordin.web.instruments import views as instrument_views

urlpatterns = [
    path("", clinic_views.caseload, name="caseload"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", account_views.account, name="account"),
    path("account/2fa/setup/", account_views.setup, name="2fa-setup"),
    path("account/2fa/verify/", account_views.verify, name="2fa-verify"),
    path("account/2fa/recovery-codes/", account_views.recovery_codes, name="2fa-recovery-codes"),
    path("account/password/", account_views.password_change, name="password-change"),
    path("account/logout-everywhere/", account_views.logout_everywhere, name="logout-everywhere"),
    path("account/unlock/<str:username>/", account_views.unlock, name="unlock"),
    path("account/language/", account_views.language, name="account-language"),  # issue 14
    path("clients/<int:pk>/", clinic_views.client_detail, name="client"),
    path("clients/<int:pk>/rating/", clinic_views.therapist_rating, name="therapist-rating"),
    path("clients/<int:pk>/sessions/", clinic_views.record_session, name="record-session"),
    path(
        "clients/<int:pk>/sessions/<int:session_pk>/correct/",
        clinic_views.correct_session,
        name="correct-session",
    ),
    path(
        "clients/<int:pk>/sessions/<int:session_pk>/delete/",
        clinic_views.delete_session,
        name="delete-session",
    ),
    path("clients/<int:pk>/links/", clinic_views.issue_link, name="issue-link"),
    path(
        "clients/<int:pk>/links/<int:link_pk>/revoke/",
        clinic_views.revoke_link,
        name="revoke-link",
    ),
    path("alerts/", alert_views.alert_list, name="alerts"),
    path("alerts/<int:pk>/acknowledge/", alert_views.acknowledge, name="alert-acknowledge"),
    path("alerts/<int:pk>/resolve/", alert_views.resolve, name="alert-resolve"),
    path("exports/", exports.index, name="exports"),
    path("exports/scores.csv", exports.scores_csv, name="export-scores"),
    path("outcomes/", outcomes.outcomes, name="outcomes"),
    path("outcomes/report.pdf", outcomes.outcomes_pdf, name="outcomes-pdf"),
    path("audit/", audit_views.audit_list, name="audit"),
    path("audit/export.csv", audit_views.audit_export, name="audit-export"),
    path("c/", checkin_views.checkin, name="checkin"),
    path("c/<str:token>", checkin_views.start, name="checkin-start"),
    path("", include("bordin.web.journey.urls")),
    path("", include("bordin.web.operations.urls")),  # issue 9
    path("instruments/", instrument_views.instrument_list, name="instruments"),
    path("instruments/<int:pk>/", instrument_views.instrument_update, name="instrument-update"),
    path("account/tokens/", api_views.tokens, name="api-tokens"),
    path("account/tokens/<int:pk>/revoke/", api_views.revoke, name="api-token-revoke"),
    path("clients/<int:pk>/fhir.json", fhir_views.client_bundle, name="client-fhir"),
    path("exports/fhir.json", fhir_views.clinic_bundle, name="export-fhir"),
    path("exports/fhir.ndjson", fhir_views.clinic_ndjson, name="export-fhir-ndjson"),
    path("fhir/metadata", fhir_views.metadata, name="fhir-metadata"),
    path("fhir/Questionnaire", fhir_views.questionnaire_search, name="fhir-questionnaire"),
    path(
        "fhir/QuestionnaireResponse",
        fhir_views.questionnaire_response_search,
        name="fhir-questionnaire-response",
    ),
    path("fhir/Observation", fhir_views.observation_search, name="fhir-observation"),
    path("api/v1/", api_views.api_index, name="api-v1-index"),  # before Ninja's (a 404)
    path("api/v1/", api_v1.urls),
    path("outstanding/", delivery_views.outstanding, name="outstanding"),
    path("outstanding/plan/", delivery_views.plan, name="delivery-plan"),
    path("outstanding/<int:pk>/resend/", delivery_views.resend, name="outstanding-resend"),
    path("clients/<int:pk>/plan/", delivery_views.episode_plan, name="client-plan"),
    path("unsubscribe/<str:token>/", delivery_views.unsubscribe, name="unsubscribe"),
]
