"""The seed's asgi.py: the channel layer daphne serves (`daphne channels_example.asgi:channel_layer`)."""
import os

import channels.asgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_example.settings")

channel_layer = channels.asgi.get_channel_layer()
