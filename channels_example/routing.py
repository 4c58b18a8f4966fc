"""The seed's routing table: which consumer handles which channel.

HTTP requests are not routed here, so they keep going to Django's urls.py. The last
two channels are the project's own: chat messages on their way to the database, and
the timed sweep every daphne asks for (settings.SWEEP_INTERVAL; docs/history.md).
"""
from channels.routing import route

from channels_example import consumers

channel_routing = [
    route("websocket.connect", consumers.ws_connect),
    route("websocket.receive", consumers.ws_message),
    route("websocket.disconnect", consumers.ws_disconnect),
    route("chat.history", consumers.store_message),
    route("chat.sweep", consumers.sweep),
]
