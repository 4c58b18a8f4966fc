from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.i18n import JavaScriptCatalog

from channels_example import accounts, monitoring, views

urlpatterns = [
    path("", views.index, name="index"),
    # The reader's language: the switch on each page posts here; the page's script gets its
    # translations from the catalogue.
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("seed/", views.seed, name="seed"),
    # Django's own accounts (channels_example/accounts.py). Logging out takes a POST: Django
    # 2.2's LogoutView logs out on a GET too, which any page could make a browser send; a GET
    # gets a page with the button instead (views.logout).
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", views.logout, name="logout"),
    path("accounts/signup/", accounts.signup, name="signup"),
    # Django's own password change; saving the new password closes the user's sockets (accounts.py).
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(),
         name="password_change_done"),
    # Operations (docs/operations.md). daphne answers /healthz itself when no worker does.
    path("healthz", monitoring.healthz, name="healthz"),
    path("metrics", monitoring.prometheus, name="metrics"),
    path("status/", monitoring.status, name="status"),
    path("status.json", monitoring.status_json, name="status-json"),
    # Django's admin: users, stored messages, moderators' actions (manage.py createsuperuser).
    path("admin/", admin.site.urls),
]
