from django.contrib import admin

from channels_example.models import Message, ModerationAction


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("room", "seq", "handle", "signed_in", "message", "created")
    list_filter = ("room", "signed_in")
    search_fields = ("handle", "message")


@admin.register(ModerationAction)
class ModerationActionAdmin(admin.ModelAdmin):
    list_display = ("created", "moderator_name", "action", "room", "seq", "target", "seconds")
    list_filter = ("action", "room")
    search_fields = ("moderator_name", "target", "room")
    readonly_fields = [field.name for field in ModerationAction._meta.fields]

    def has_add_permission(self, request):
        return False
