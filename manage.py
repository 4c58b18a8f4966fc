#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_example.settings")
    if sys.argv[1:2] in (["runworker"], ["runclock"]):
        # A worker or a clock is a server, like daphne: no development defaults (settings.SERVER_PROCESS).
        os.environ.setdefault("CHANNELS_EXAMPLE_SERVER", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
