"""Moderation: staff delete a room's message or mute a name in a room for a while.

* **Delete**: the message leaves the room's recent history in Redis (or memory) and the
  database, and the room gets a ``deleted`` frame with its ``seq``; a joiner never sees
  it. The frame is numbered with the room's presence events (presence.event), whose
  snapshot (the welcome) a joiner receives before its history: so the join gate either
  passes the frame after a history that still held the message, or drops it because
  the history was read after the deletion. A message deleted before a worker stored it
  is never stored (history.store checks the actions).
* **Mute**: messages from that name in that room are refused with ``muted`` and the
  seconds left (``retry_after``) until the time is up; the room gets a ``muted`` frame.
* Only staff users may do either (``not_allowed`` otherwise), and every action is kept
  as a ModerationAction (who, what, when, which room), listed in the admin.
"""
import threading
import time

from django.conf import settings

from channels_example.backends.shards import PerDeployment
from channels_example.chat import history, presence, protocol
from channels_example.models import ModerationAction


def apply(room, action, args, moderator, user):
    """Do what a staff member's frame asks (protocol.parse_frame's ``("delete", seq)`` or
    ``("mute", handle, seconds)``); raises ProtocolError when it cannot be done."""
    if not moderator.staff:
        raise protocol.ProtocolError("not_allowed", "only staff may %s" % action)
    if action == "delete":
        (seq,) = args
        # Recorded before the message is removed: a worker storing it at this moment either
        # sees the record once it has stored it (history.store removes it again), or stored it
        # before the record existed, and then the removal below finds it.
        action = ModerationAction.objects.create(moderator=user, moderator_name=moderator.handle,
                                                 action="delete", room=room.name, seq=seq)
        if not history.forget(room, seq):
            action.delete()
            raise protocol.ProtocolError("no_such_message", "%s has no message %d" % (room.name, seq))
        room.group.send(presence.event(room, protocol.deleted(room.name, seq, moderator.handle)))
    else:
        target, seconds = args
        mutes().mute(room, target, time.time() + seconds)
        ModerationAction.objects.create(moderator=user, moderator_name=moderator.handle, action="mute",
                                        room=room.name, target=target, seconds=seconds)
        room.group.send(presence.event(room, protocol.muted(room.name, target, seconds, moderator.handle)))


def muted_for(room, handle):
    """Seconds until ``handle`` may speak in ``room`` again; 0 when it is not muted (runserver's delivery
    asks; on Redis the delivery script reads the room's mutes itself)."""
    return max(0.0, mutes().until(room, handle) - time.time())


class LocalMutes:
    """Mutes in this process's memory: for runserver."""

    def __init__(self):
        self._lock = threading.Lock()
        self._until = {}

    def mute(self, room, handle, until):
        with self._lock:
            self._until[room.name, handle] = until

    def until(self, room, handle):
        with self._lock:
            return self._until.get((room.name, handle), 0)


class RedisMutes:
    """Mutes in a Redis hash per room (handle -> until), on the room's server (Room.shard_key), where
    the delivery script reads them (lua/deliver.lua)."""

    def __init__(self, shards):
        self.shards = shards

    def mute(self, room, handle, until):
        key = room.key("muted")
        self.shards.client(room.shard_key).pipeline().hset(key, handle, until).expire(
            key, settings.MAX_MUTE_SECONDS).execute()


mutes = PerDeployment(LocalMutes, RedisMutes)
