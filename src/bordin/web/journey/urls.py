"""URLs of the client's journey (included at the site root)."""

from __future__ import annotations

from django.urls import path

from bordin.web.journey import views

urlpatterns = [
    path(
        "clients/<int:pk>/journey/intake-link/",
        views.issue_intake_link,
        name="journey-intake-link",
    ),
    path("clients/<int:pk>/journey/fit-link/", views.issue_fit_link, name="journey-fit-link"),
    path("clients/<int:pk>/journey/new-link/", views.new_link, name="journey-new-link"),
    path(
        "clients/<int:pk>/journey/graduation-link/",
        views.issue_graduation_link,
        name="journey-graduation-link",
    ),
    path(
        "clients/<int:pk>/journey/links/<int:link_pk>/revoke/",
        views.revoke_link,
        name="journey-revoke-link",
    ),
    path("clients/<int:pk>/journey/goals/", views.add_goal, name="journey-goal-add"),
    path(
        "clients/<int:pk>/journey/goals/<int:goal_pk>/",
        views.revise_goal,
        name="journey-goal-revise",
    ),
    path("clients/<int:pk>/journey/graduation/", views.graduation, name="journey-graduation"),
    path(
        "clients/<int:pk>/journey/graduation.pdf",
        views.graduation_pdf,
        name="journey-graduation-pdf",
    ),
    path(
        "clients/<int:pk>/journey/report.pdf",
        views.progress_report_pdf,
        name="journey-report-pdf",
    ),
    path("rematch/", views.rematch_list, name="journey-rematch-list"),
    path("rematch/settings/", views.journey_settings, name="journey-settings"),
    path("rematch/<int:pk>/", views.rematch_detail, name="journey-rematch"),
    path("rematch/<int:pk>/assign/", views.rematch_assign, name="journey-rematch-assign"),
    path("j/", views.client_step, name="journey-client"),
    path("j/summary.pdf", views.client_pdf, name="journey-client-pdf"),
    path("j/<str:token>", views.start, name="journey-start"),
]
