"""The seed's asgi.py: the channel layer daphne serves (`daphne channels_example.asgi:channel_layer`)."""
import os

import channels.asgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_example.settings")
# daphne is a server: no development defaults (settings.SERVER_PROCESS).
os.environ.setdefault("CHANNELS_EXAMPLE_SERVER", "1")

channel_layer = channels.asgi.get_channel_layer()
