"""One log format in every process: runserver, daphne, runworker and runclock (settings.LOGGING).

settings.LOGGING gives one handler and one format to the project's loggers, to channels'
(``django.channels``, a worker's lines), to daphne's (``daphne.*``, its access lines as
``daphne.access``, from interface/bounds.py) and to Django's. Three things of the 2017 stack
wrote lines of their own besides:

* daphne's command sets its format on the root logger (``logging.basicConfig``) before it
  loads the layer; Django's set-up, as the layer loads, replaces it (LOGGING's ``root``);
* daphne's access log and runserver's request lines each had a format and a stream of their
  own: daphne's factory now logs each request and socket to ``daphne.access`` instead;
* channels 1.1.8's runserver and runworker call ``channels.log.setup_logger``, which gives
  ``django.channels`` and daphne's loggers a second handler in a format of its own (so each
  line came twice). ``install()``, from ``ChatConfig.ready()``, gives them this module's
  ``setup_logger`` instead, which only sets their level: DEBUG with ``-v 2``, as channels' does.
"""
import logging

from channels.management.commands import runserver, runworker


def setup_logger(name, verbosity=1):
    """channels' ``setup_logger`` without a handler or a format of its own: ``name``'s logger as
    settings.LOGGING made it, and daphne's, at DEBUG when ``verbosity`` is 2 or more."""
    if verbosity > 1:
        for logger in (name, "daphne"):
            logging.getLogger(logger).setLevel(logging.DEBUG)
    return logging.getLogger(name)


class SaidOnce(logging.Filter):
    """Lets the first record of ``message`` (as logged, before its arguments) through, and no later one:
    runserver's four worker threads each log the same "Listening on channels ..."."""

    def __init__(self, message):
        super().__init__()
        self.message, self.said = message, False

    def filter(self, record):
        if record.msg != self.message:
            return True
        said, self.said = self.said, True
        return not said


def install():
    runserver.setup_logger = setup_logger
    runworker.setup_logger = setup_logger
