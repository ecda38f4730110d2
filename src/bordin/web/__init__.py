"""Bordin's clinic web platform (Django): check-in links, caseload, client page and alerts.

The project package holds settings, URLs and WSGI entry point; domain code lives in three apps:

* :mod:`bordin.web.clinic`: clinics, staff, clients, episodes, sessions, responses, goals;
  the caseload and the client page. Every staff view reaches records through
  :mod:`bordin.web.clinic.scoping`.
* :mod:`bordin.web.checkins`: single-use check-in links and the public check-in form.
* :mod:`bordin.web.alerts`: alerts (risk, rupture, not on track, divergence, overdue) and
  their lifecycle.

All scoring and signal detection goes through :mod:`bordin.measures`.
"""
