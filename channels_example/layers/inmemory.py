"""asgiref's in-memory layer (the seed's, runserver's), with drops, floods and joins made explicit.

runserver is one process: its daphne and its worker threads share this layer, so no
daphne can die without its workers.
"""
import collections
import threading

from asgiref.inmemory import ChannelLayer

from channels_example.layers.explicit import ExplicitDelivery
from channels_example.layers.gate import GATE


class InMemoryChannelLayer(ExplicitDelivery, ChannelLayer):
    extensions = ChannelLayer.extensions + [GATE]

    def __init__(self, **config):
        super().__init__(**config)
        self._ready = collections.deque()
        self._ready_lock = threading.Lock()

    def send_group(self, group, message):
        # As asgiref's own send_group: members past group_expiry leave first.
        self._clean_expired()
        with self.thread_lock:
            members = list(self.group_channels(group))
        self.send_to_members(group, members, message)

    def receive(self, channels, block=False):
        # Only daphne receives on a process channel ("...!"), and only its messages are
        # gated; workers receive on the others.
        if len(channels) == 1 and channels[0].endswith("!"):
            with self._ready_lock:
                self._ready.extend(self.gate.overdue())
                while not self._ready:
                    channel, message = super().receive(channels, block)
                    if channel is None:
                        return None, None
                    self._ready.extend(self.gate.admit(channel, message))
                return self._ready.popleft()
        return super().receive(channels, block)
