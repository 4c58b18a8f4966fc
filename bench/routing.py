"""The project's routing with @in_order taken off its consumers (bench/settings.py, ORDERED_DELIVERY=0)."""
from channels.routing import route

from channels_example.routing import channel_routing as ordered

channel_routing = [
    route(channel, getattr(entry.consumer, "unordered", entry.consumer), **entry.filters)
    for entry in ordered for channel in entry.channels
]
