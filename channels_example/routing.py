"""The seed's routing table: which consumer handles which channel.

HTTP requests are not routed here, so they keep going to Django's urls.py.
"""
from channels.routing import route

from channels_example import consumers

channel_routing = [
    route("websocket.connect", consumers.ws_connect),
    route("websocket.receive", consumers.ws_message),
    route("websocket.disconnect", consumers.ws_disconnect),
]
