from django.contrib import admin

from channels_example.models import Message


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("room", "seq", "handle", "message", "created")
    list_filter = ("room",)
    search_fields = ("handle", "message")
