"""URLs of clinic operations (included at the site root). The paths are contracts (issue 9)."""

from __future__ import annotations

from django.urls import path

from bordin.web.operations import views

urlpatterns = [
    path("staff/", views.staff_list, name="staff"),
    path("staff/invite/", views.staff_invite, name="staff-invite"),
    path("staff/invites/<int:pk>/revoke/", views.invite_revoke, name="staff-invite-revoke"),
    path("staff/<int:pk>/", views.staff_detail, name="staff-detail"),
    path("staff/<int:pk>/deactivate/", views.staff_deactivate, name="staff-deactivate"),
    path("staff/<int:pk>/reset-2fa/", views.staff_reset_2fa, name="staff-reset-2fa"),
    path("enrol/<str:token>", views.enrol, name="enrol"),
    path("clients/new/", views.client_new, name="client-new"),
    path("clients/import/", views.client_import, name="client-import"),
    path("clients/<int:pk>/manage/", views.client_manage, name="client-manage"),
    path("clients/<int:pk>/contact/", views.client_contact, name="client-contact"),
    path("clients/<int:pk>/reassign/", views.client_reassign, name="client-reassign"),
    path("clients/<int:pk>/episode/close/", views.episode_close, name="episode-close"),
    path("clients/<int:pk>/episode/new/", views.episode_new, name="episode-new"),
    path("clients/<int:pk>/archive/", views.client_archive, name="client-archive"),
    path("clients/<int:pk>/export/", views.client_export, name="client-export"),
    path("clients/<int:pk>/erase/", views.client_erase, name="client-erase"),
    path("clinic/settings/", views.clinic_settings, name="operations-settings"),
]
