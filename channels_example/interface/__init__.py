"""What runs in daphne, the interface server, besides the channel layer: the bounds on what clients send.

``install()`` gives daphne's ``Server`` the protocols of channels_example.interface.bounds:
daphne builds its HTTP factory in ``Server.run`` from the name ``HTTPFactory`` in its
``daphne.server`` module, so replacing that name before the server runs is enough, and
daphne itself is not forked. ``ChatConfig.ready()`` calls it, so it holds for
``daphne channels_example.asgi:channel_layer`` (Django is set up when the layer is
loaded) and for ``manage.py runserver`` alike; in a worker it changes nothing that runs.
"""
from daphne import server

from channels_example.interface.bounds import BoundedHTTPFactory


def install():
    server.HTTPFactory = BoundedHTTPFactory
