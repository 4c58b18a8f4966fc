from django.conf import settings
from django.contrib import admin
from django.urls import path, re_path
from django.views.static import serve

from channels_example import views

urlpatterns = [
    path("", views.index, name="index"),
    path("seed/", views.seed, name="seed"),
    # Django's admin: stored messages, users (manage.py createsuperuser).
    path("admin/", admin.site.urls),
    # The page's one JS and one CSS file, served by the workers even with DEBUG off so the
    # production topology needs no other server; behind a real proxy, serve them there.
    re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_DIR}),
]
