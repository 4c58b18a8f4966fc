"""Security headers Django 2.2 has no setting for: a Content-Security-Policy and a Referrer-Policy.

The chat page needs only its own origin: its script, its stylesheet, and a WebSocket to
the host it came from (named as ws:// and wss:// too, for browsers whose 'self' does
not cover them). A view that needs more sets its own header first (views.seed).
"""
from django.core.exceptions import DisallowedHost

POLICY = ("default-src 'self'; img-src 'self' data:; connect-src 'self'%s; "
          "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def security_headers(get_response):
    def middleware(request):
        response = get_response(request)
        try:
            host = request.get_host()
            sockets = " ws://%s wss://%s" % (host, host)
        except DisallowedHost:  # answered with 400 already; no socket to allow
            sockets = ""
        response.setdefault("Content-Security-Policy", POLICY % sockets)
        response.setdefault("Referrer-Policy", "same-origin")
        return response

    return middleware
