"""The HTTP side: the browser test page, and the seed's own page for its readers."""
from django.shortcuts import render

from channels_example.middleware import POLICY


def index(request):
    """The chat page at ``/``. A guest gets a session, so that all its tabs are one person to the
    chat (channels_example.chat.identity), as a signed-in user's are."""
    if not request.user.is_authenticated and request.session.session_key is None:
        request.session["guest"] = True
    return render(request, "index.html")


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
