from django.contrib import admin

from channels_example.models import Message, ModerationAction


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """The stored history, to read. A message is deleted from the chat page by a moderator
    (chat.moderation): that also takes it out of Redis and tells the room, which deleting
    the row here would not."""

    list_display = ("room", "seq", "handle", "signed_in", "message", "created")
    list_filter = ("room", "signed_in")
    search_fields = ("handle", "message")

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ModerationAction)
class ModerationActionAdmin(admin.ModelAdmin):
    list_display = ("created", "moderator_name", "action", "room", "seq", "target", "seconds")
    list_filter = ("action", "room")
    search_fields = ("moderator_name", "target", "room")
    readonly_fields = [field.name for field in ModerationAction._meta.fields]

    def has_add_permission(self, request):
        return False
