"""The chat's one table: every message a room received, kept for history.

Rows are written by the ``store_message`` consumer (channels_example.chat.history.store),
off the path that delivers messages to the room, and pruned there to HISTORY_RETENTION
per room. ``seq`` is the message's number in its room, assigned at delivery
(channels_example.chat.rooms.Room.publish); it orders the history and makes storing idempotent.
"""
from django.db import models


class Message(models.Model):
    room = models.CharField(max_length=100)
    seq = models.BigIntegerField()
    handle = models.CharField(max_length=32)
    message = models.TextField()
    created = models.DateTimeField()

    class Meta:
        # The unique index also serves "the room's latest messages" (read backwards).
        unique_together = [("room", "seq")]

    def __str__(self):
        return "%s #%d %s: %s" % (self.room, self.seq, self.handle, self.message[:40])
