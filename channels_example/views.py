"""The HTTP side: the browser test page, and the seed's own page for its readers."""
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.views import i18n
from django.views.decorators.http import require_http_methods

from channels_example.middleware import POLICY


def index(request):
    """The chat page at ``/``. A guest gets a session, so that all its tabs are one person to the
    chat (channels_example.chat.identity), as a signed-in user's are."""
    if not request.user.is_authenticated and request.session.session_key is None:
        request.session["guest"] = True
    return render(request, "index.html", {"limits": {
        "message": settings.MAX_MESSAGE_LENGTH, "handle": settings.MAX_HANDLE_LENGTH, "room": settings.MAX_ROOM_LENGTH}})


def set_language(request):
    """Django's ``set_language`` (the language switch on every page), for the codes of LANGUAGES
    only: no other string reaches the translation machinery's language checks."""
    if request.POST.get("language") not in dict(settings.LANGUAGES):
        return HttpResponseRedirect("/")
    return i18n.set_language(request)


_logout = auth_views.LogoutView.as_view()


@require_http_methods(["GET", "POST"])
def logout(request):
    """A POST logs out (Django's LogoutView). A GET, someone typing the address, gets a page with
    the Log out button: Django 2.2's view logs out on a GET too, which any page could make a
    browser send."""
    if request.method == "POST":
        return _logout(request)
    return render(request, "logout.html")


def seed(request):
    """The study note's WebSocketTest() page, its JavaScript unchanged but for the host.

    Its script is inline and runs from a ``javascript:`` link, as the note wrote it: the
    one page allowed to do so.
    """
    response = render(request, "seed.html")
    host = request.get_host()
    response["Content-Security-Policy"] = (POLICY % (" ws://%s wss://%s" % (host, host))).replace(
        "default-src 'self';", "default-src 'self'; script-src 'self' 'unsafe-inline';")
    return response
