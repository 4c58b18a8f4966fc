"""The transport: channel layers for channels 1.x that drop nothing silently and keep each room's order.

This package knows nothing of the chat. It imports only the standard library, redis, ormsgpack,
asgiref, asgi_redis and Twisted (tests/test_architecture.py holds it to that); what it
needs from an application reaches it through the layer's CONFIG in CHANNEL_LAYERS:

    gate_streams, gap_seconds         the join gate (gate.py, reorder.py)
    worker_priority                   the Redis layer (redis.py)

plus every option of the stock layer underneath (asgi_redis's, asgiref's). Both layers
pass asgiref's own conformance suite (tests/test_layer_conformance.py).
"""
from channels_example.layers.inmemory import InMemoryChannelLayer
from channels_example.layers.redis import RedisChannelLayer
from channels_example.layers.sentinel import RedisSentinelChannelLayer

__all__ = ["InMemoryChannelLayer", "RedisChannelLayer", "RedisSentinelChannelLayer"]
