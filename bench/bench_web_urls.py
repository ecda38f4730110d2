"""Bench-only URLconf: the app's URLs plus ``/bench/ok``, a bare view returning "ok"."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from bordin.web.urls import urlpatterns as app_urlpatterns


@csrf_exempt  # the baseline: no form, no token; the rest of the middleware stack still runs
def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path("bench/ok", ok, name="bench-ok"), *app_urlpatterns]
