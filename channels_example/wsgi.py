"""WSGI entry point, kept from the project template; WebSockets need asgi.py."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_example.settings")
# A server: no development defaults (settings.SERVER_PROCESS).
os.environ.setdefault("CHANNELS_EXAMPLE_SERVER", "1")

application = get_wsgi_application()
