"""Accounts with Django's own parts: LoginView and LogoutView, a sign-up page, and the admin.

* ``/accounts/login/`` and ``/accounts/logout/`` are Django 2.2's LoginView and
  LogoutView (logout by POST only: Django 2.2's logs out on a GET too, which any page
  could trigger); ``/accounts/signup/`` is a UserCreationForm whose username follows the
  chat's rules for a name (channels_example.chat.protocol.validate_handle) and never
  starts with ``guest-``.
* **Logging out, a new password, or an account made inactive ends every socket of that
  user**: the signal handlers
  below send ``{"close": 4401}`` to the user's Group (chat.identity.user_group), so no
  socket outlives its login; a new socket with the old cookie is a guest.
* ``CachedModelBackend`` is an ``AxesBackend`` (channels_example/logins.py): a login for a
  username or from an address with too many recent failures is refused before any
  password is hashed. ``@channel_session_user`` asks for the user on every frame;
  this keeps it in the worker's memory for USER_CACHE_SECONDS, so a chat message costs
  no database query. A connect never trusts the cache: chat.identity reads the user
  afresh there, so a session made stale by a new password or an inactive account is a
  guest at once on every worker. And a session that does not match a worker's cached user
  has that user read afresh before Django checks it (``get_user``): the password-change
  page keeps its own session valid with the new password, which the other workers' caches
  do not know yet.
"""
import threading
import time
from importlib import import_module

from axes.backends import AxesBackend
from channels import Group
from django import forms
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model, login
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError
from django.db.models.signals import post_save, pre_save
from django.shortcuts import redirect, render
from django.utils.crypto import constant_time_compare
from django.utils.http import is_safe_url

from channels_example.chat import identity, protocol

_users = {}  # user id -> (time it expires, user)
_users_lock = threading.Lock()


class CachedModelBackend(AxesBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None:  # a login over HTTP: WSClient.login and the shell have no client to count
            super().authenticate(request, username=username, password=password, **kwargs)  # raises if locked out
        user = ModelBackend.authenticate(self, request, username=username, password=password, **kwargs)
        if user is None and password is not None:
            found = get_user_model()._default_manager.filter(username=username).first()
            if found is not None and not found.has_usable_password():
                # CVE-2024-39329 (channels_example.backports): hash as for any other user, so
                # the time taken tells nothing about which usernames exist.
                get_user_model()().set_password(password)
        return user

    def get_user(self, user_id):
        now = time.monotonic()
        with _users_lock:
            cached = _users.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        user = super().get_user(user_id)
        with _users_lock:
            if len(_users) > 10000:
                _users.clear()
            if user is not None:
                _users[user_id] = (now + settings.USER_CACHE_SECONDS, user)
        return user


_sessions_cleared = 0.0


def clear_expired_sessions():
    """``manage.py clearsessions``, at most once an hour per worker (from chat.sweep): every guest's
    visit makes a session row (views.index), and nothing else removes them."""
    global _sessions_cleared
    if time.monotonic() - _sessions_cleared < 3600:
        return
    _sessions_cleared = time.monotonic()
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()


def forget_user(user_id):
    with _users_lock:
        _users.pop(user_id, None)


_get_user = auth.get_user


def get_user(request):
    """Django's ``auth.get_user`` (the HTTP requests', and channels' for a connect and every frame),
    but a user this worker cached whose password hash is not the session's is read afresh first.

    Django flushes a session whose hash does not match the user it got, as made with an old
    password. A new password saved by another worker, which cannot tell this one, made the
    cached user the stale one: the session the password-change page kept valid, with the new
    hash, would have been flushed, signing that browser out. The check is one HMAC per call.
    """
    session = request.session
    user_id, session_hash = session.get(SESSION_KEY), session.get(HASH_SESSION_KEY)
    if user_id is not None and session_hash:
        user_id = get_user_model()._meta.pk.to_python(user_id)
        with _users_lock:
            cached = _users.get(user_id)
        if cached is not None and not constant_time_compare(session_hash, cached[1].get_session_auth_hash()):
            forget_user(user_id)
    return _get_user(request)


def close_sockets(user_id):
    """Close every open socket of a user (4401: signed out elsewhere)."""
    forget_user(user_id)
    Group(identity.user_group(user_id)).send({"close": identity.CLOSE_SIGNED_OUT})


def on_logout(sender, request, user, **kwargs):
    if user is not None:
        close_sockets(user.pk)


def remember_password(sender, instance, **kwargs):
    """Before a user is saved, note whether its password is changing."""
    instance._password_changed = bool(instance.pk) and not sender.objects.filter(
        pk=instance.pk, password=instance.password).exists()


def on_user_saved(sender, instance, created, **kwargs):
    forget_user(instance.pk)
    if not created and (getattr(instance, "_password_changed", False) or not instance.is_active):
        close_sockets(instance.pk)


def connect_signals():
    """Close a user's sockets when it logs out, changes its password or is made inactive; and put
    ``get_user`` in Django's place, where the HTTP requests and channels' decorators call it."""
    from django.contrib.auth.signals import user_logged_out

    auth.get_user = get_user
    user = get_user_model()
    user_logged_out.connect(on_logout, dispatch_uid="channels_example.on_logout")
    pre_save.connect(remember_password, sender=user, dispatch_uid="channels_example.remember_password")
    post_save.connect(on_user_saved, sender=user, dispatch_uid="channels_example.on_user_saved")


class SignUpForm(UserCreationForm):
    def clean_username(self):
        username = self.cleaned_data["username"]
        try:
            name = protocol.validate_handle(username)
        except protocol.ProtocolError as invalid:
            raise ValidationError(invalid.detail)
        if name.lower().startswith(identity.GUEST_PREFIX):
            raise ValidationError("names starting with %s are for guests" % identity.GUEST_PREFIX)
        if get_user_model().objects.filter(username__iexact=name).exists():
            raise ValidationError("that name is taken")
        return name


def signup(request):
    """Create an account and sign in with it."""
    form = SignUpForm(request.POST or None)
    form.fields["username"].widget = forms.TextInput(attrs={"maxlength": settings.MAX_HANDLE_LENGTH,
                                                            "autofocus": True, "autocomplete": "username"})
    if request.method == "POST" and form.is_valid():
        login(request, form.save(), backend="channels_example.accounts.CachedModelBackend")
        target = request.GET.get("next", "")
        safe = is_safe_url(target, allowed_hosts={request.get_host()}, require_https=request.is_secure())
        return redirect(target if safe else settings.LOGIN_REDIRECT_URL)
    return render(request, "registration/signup.html", {"form": form})

