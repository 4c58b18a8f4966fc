"""The seed's routing table: which consumer handles which channel.

HTTP requests are not routed here, so they keep going to Django's urls.py. The path
of the study note's test page, /channels_example/, is the note's echo
(channels_example/echo.py): its three routes match on the message's ``path`` and come
first, because the first route that matches a message handles it. Every other path is
a chat room. The last two channels are the project's own, timed channels the chat's
clock sends (channels_example/clock.py, ``manage.py runclock``): storing the chat
messages waiting to be stored (settings.STORE_INTERVAL), and the sweep
(settings.SWEEP_INTERVAL; docs/history.md).
"""
from channels.routing import route

from channels_example import consumers, echo

# The socket the note's page opens (templates/seed.html). daphne puts the path in every
# message of a socket, its disconnect included, so all three reach the echo.
NOTE_PAGE_PATH = r"^/channels_example/$"

channel_routing = [
    route("websocket.connect", echo.ws_connect, path=NOTE_PAGE_PATH),
    route("websocket.receive", echo.ws_message, path=NOTE_PAGE_PATH),
    route("websocket.disconnect", echo.ws_disconnect, path=NOTE_PAGE_PATH),
    route("websocket.connect", consumers.ws_connect),
    route("websocket.receive", consumers.ws_message),
    route("websocket.disconnect", consumers.ws_disconnect),
    route("chat.store", consumers.store_messages),
    route("chat.sweep", consumers.sweep),
]
