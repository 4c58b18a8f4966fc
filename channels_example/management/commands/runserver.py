"""``manage.py runserver``: channels 1.x's (daphne and four worker threads in one process), and the
chat's clock on a thread beside them (channels_example.clock): the in-memory layer exists in this
process only, so the clock cannot be a process of its own here.

It extends staticfiles' runserver, which channels makes its own (channels/hacks.py) so that
static files are still served under DEBUG. Its lines are in every process's format
(channels_example.logs), and its four worker threads say once which channels they listen on.
"""
import logging

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.contrib.staticfiles.management.commands.runserver import Command as StaticfilesRunserver

from channels_example import clock, logs


class Command(StaticfilesRunserver):
    def inner_run(self, *args, **options):
        if options.get("use_asgi", True) and options.get("run_worker", True):
            # The layer made here, before the thread: channels makes a process's layer on first use,
            # unlocked, and a clock racing daphne to it would send on a second in-memory layer.
            channel_layers[DEFAULT_CHANNEL_LAYER]
            clock.start_thread()
            logging.getLogger("django.channels").addFilter(logs.SaidOnce("Listening on channels %s"))
        return super().inner_run(*args, **options)
