"""The chat's tables: every message a room received, kept for history; and what moderators did.

Message rows are written by the ``store_messages`` consumer (channels_example.chat.history.store),
off the path that delivers messages to the room, and pruned there to HISTORY_RETENTION
per room. ``seq`` is the message's number in its room, assigned at delivery
(channels_example.chat.rooms.Room.publish); it orders the history and makes storing idempotent.
"""
from django.conf import settings
from django.db import models


class Message(models.Model):
    room = models.CharField(max_length=100)
    seq = models.BigIntegerField()
    handle = models.CharField(max_length=32)
    # Whether the handle was a signed-in user's, and the id of the person (chat.identity).
    signed_in = models.BooleanField(default=False)
    sender = models.CharField(max_length=16, default="")
    message = models.TextField()
    created = models.DateTimeField()

    class Meta:
        # The unique index also serves "the room's latest messages" (read backwards).
        unique_together = [("room", "seq")]

    def __str__(self):
        return "%s #%d %s: %s" % (self.room, self.seq, self.handle, self.message[:40])


class ModerationAction(models.Model):
    """A staff member deleted a message or muted a name (channels_example.chat.moderation)."""

    ACTIONS = [("delete", "deleted a message"), ("mute", "muted a name")]

    moderator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    moderator_name = models.CharField(max_length=150)
    action = models.CharField(max_length=10, choices=ACTIONS)
    room = models.CharField(max_length=100)
    seq = models.BigIntegerField(null=True, blank=True)
    target = models.CharField(max_length=32, blank=True)
    seconds = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["room", "seq"])]

    def __str__(self):
        what = "message %s" % self.seq if self.action == "delete" else "%s for %s s" % (self.target, self.seconds)
        return "%s %s in %s: %s" % (self.moderator_name, self.get_action_display(), self.room, what)
