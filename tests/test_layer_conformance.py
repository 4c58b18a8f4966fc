"""Both project layers pass asgiref 1.1.2's own conformance suite, as asgi_redis runs it against its layer.

Each is configured as settings.py configures it, with the expiries short enough for the
suite to wait them out (a message: 1 s, a Group member: 2 s) and a capacity of 5.
"""
import asgiref.conformance
import pytest
from django.conf import settings

from channels_example import topology
from channels_example.layers import InMemoryChannelLayer, RedisChannelLayer

SHORT = dict(expiry=1, group_expiry=2, capacity=5)


@pytest.fixture(scope="class")
def redis_layer_for_the_suite(request, tmp_path_factory):
    folder, port = tmp_path_factory.mktemp("conformance"), topology.free_port()
    server = topology.Process("redis", topology.redis_argv(port, folder), port=port,
                              log_path=folder / "redis.log").start()
    config = dict(settings.REDIS_TRANSPORT, channel_capacity={}, **SHORT)
    request.cls.channel_layer = RedisChannelLayer(hosts=["redis://127.0.0.1:%d/0" % port], **config)
    yield
    server.stop()


@pytest.mark.usefixtures("redis_layer_for_the_suite")
class TestRedisChannelLayer(asgiref.conformance.ConformanceTestCase):
    expiry_delay = 1.1
    capacity_limit = 5


class TestInMemoryChannelLayer(asgiref.conformance.ConformanceTestCase):
    channel_layer = InMemoryChannelLayer(**dict(settings.GATE_TRANSPORT, **SHORT))
    expiry_delay = 1.1
    capacity_limit = 5
