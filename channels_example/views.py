"""The HTTP side: the browser test page, and the seed's own page for its readers."""
from django.shortcuts import render


def index(request):
    """The chat page at ``/``."""
    return render(request, "index.html")


def seed(request):
    """The study note's WebSocketTest() page, its JavaScript unchanged but for the host."""
    return render(request, "seed.html")
