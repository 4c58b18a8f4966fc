"""The benchmark's settings: production's, with one thing swapped out to measure what it costs.

    DJANGO_SETTINGS_MODULE=bench.settings REDIS_LAYER=stock     asgi_redis's own layer, unchanged
    DJANGO_SETTINGS_MODULE=bench.settings ORDERED_DELIVERY=0    the consumers without @in_order

compare.py (its "stock" target) and ordering_cost.py set these; production never reads them.
"""
import os

from channels_example.settings import *  # noqa: F401,F403
from channels_example.settings import CHANNEL_LAYERS, REDIS_TRANSPORT

if os.environ.get("REDIS_LAYER") == "stock":
    CHANNEL_LAYERS["default"]["BACKEND"] = "asgi_redis.RedisChannelLayer"
    # Only asgi_redis's own options: the layer has no gate, backlog, timers or heartbeats.
    CHANNEL_LAYERS["default"]["CONFIG"] = {
        key: value for key, value in CHANNEL_LAYERS["default"]["CONFIG"].items()
        if key in ("hosts", "capacity", "channel_capacity", "expiry", "group_expiry")
    }

if os.environ.get("ORDERED_DELIVERY") == "0":
    CHANNEL_LAYERS["default"]["ROUTING"] = "bench.routing.channel_routing"

del REDIS_TRANSPORT
