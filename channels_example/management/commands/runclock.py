"""``manage.py runclock``: the chat's clock (channels_example.clock), the Procfile's ``clock`` line."""
from django.core.management.base import BaseCommand

from channels_example.clock import Clock


class Command(BaseCommand):
    help = "Send chat.store and chat.sweep on time, for the workers: the chat's clock."

    def handle(self, *args, **options):
        try:
            Clock().run()
        except KeyboardInterrupt:
            pass
