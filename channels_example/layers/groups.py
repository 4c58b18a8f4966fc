"""Groups on the Redis layers: asgi_redis's sorted sets, each operation one round trip.

Mixed into the Redis layers (channels_example.layers.redis), in front of asgi_redis's
layer, whose Group keys, scores and expiry are kept as they are:

* ``group_add`` writes the member and the Group's expiry in one pipeline (asgi_redis
  sends ZADD and EXPIRE one after the other: two round trips for every join);
* ``group_channels`` drops the members older than ``group_expiry`` and reads the rest in
  one pipeline;
* ``send_group`` writes a Group's message once per daphne process, not once per member:
  the members' reply channels are grouped by the process they belong to (the part up to
  ``!``), and each process gets one message naming its targets, on the Group's shard
  (anyshard.py); its ``receive`` hands daphne one copy per target. A full process channel
  drops the message for those members, logged and counted.
"""
import collections
import logging
import time

import redis

from channels_example.layers.explicit import ExplicitDelivery

log = logging.getLogger(__name__)


class Groups:
    def group_add(self, group, channel):
        assert self.valid_group_name(group), "Group name not valid"
        assert self.valid_channel_name(channel), "Channel name not valid"
        key = self._group_key(group)
        pipe = self.connection(self.consistent_hash(group)).pipeline(transaction=False)
        pipe.zadd(key, **{channel: time.time()}).expire(key, self.group_expiry).execute()

    def group_channels(self, group):
        """The group's members, dropping those older than group_expiry, in one round trip."""
        key = self._group_key(group)
        pipe = self.connection(self.consistent_hash(group)).pipeline()
        pipe.zremrangebyscore(key, 0, int(time.time()) - self.group_expiry).zrange(key, 0, -1)
        return [member.decode("utf8") for member in pipe.execute()[1]]

    def send_group(self, group, message):
        by_process = collections.defaultdict(list)
        for channel in self.group_channels(group):
            by_process[self.non_local_name(channel)].append(channel)
        for process, targets in by_process.items():
            try:
                if process.endswith("!"):
                    self.send_process(process, dict(message, **{self.TARGETS: targets}), self.consistent_hash(group))
                else:
                    super(ExplicitDelivery, self).send(process, message)
            except (self.ChannelFull, redis.exceptions.ConnectionError):
                self.count_drop(process, len(targets))
                shown = ", ".join(targets[:5]) + (" and %d more" % (len(targets) - 5) if len(targets) > 5 else "")
                log.warning("dropped a message to group %s for %s: the channel of their daphne is full", group, shown)
