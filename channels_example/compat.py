"""What each supported Python needs for the 2017 stack to run on it, applied before Django's apps load.

The package's ``__init__`` calls ``apply()``, and every entry point imports the package before
Django's apps load: manage.py (runserver, runworker, migrate) and pytest-django through the
settings module, daphne through ``channels_example.asgi``, a WSGI server through
``channels_example.wsgi``. Each step below names the Python (or the pin) that needs it and why;
on 3.11 only the last runs. No installed file is changed.

What the pins give instead (requirements.txt, proven by tests/test_pins.py on each Python):

- 3.13 removed ``cgi``, which Django 2.2 (``django/http/multipartparser.py``,
  ``django/core/handlers/wsgi.py``) and channels 1.1.8 (``channels/handler.py``) import:
  ``legacy-cgi``, a maintained fork of the removed module, is installed on 3.13.
- 3.12 removed ``distutils``, which channels 1.1.8 (``channels/package_checks.py``) and redis
  2.10.6 (``redis/connection.py``) import: setuptools, pinned, provides it (its
  ``distutils-precedence.pth`` puts its own copy first, on 3.11 as well).
"""
import importlib.util
import sys


def apply():
    if sys.version_info >= (3, 12):  # its import system no longer calls find_module()
        _load_maintained_six_as_djangos()
    if importlib.util.find_spec("pkg_resources") is None:  # the pinned setuptools has none, on every Python
        _import_axes_with_a_pkg_resources_stand_in()


def _load_maintained_six_as_djangos():
    """Python 3.12's import system no longer calls ``find_module()``. Django 2.2's
    ``django/utils/six.py`` is six 1.10.0, whose importer for ``six.moves`` has nothing else,
    so channels 1.1.8's ``from django.utils.six.moves.urllib.parse import urlparse`` fails
    (``channels/staticfiles.py``, which channels' ``AppConfig.ready()`` imports through its
    runserver), and ``django.setup()`` with it. The maintained six (pinned) has
    ``find_spec()``; its module, loaded under Django's name, answers for
    ``django.utils.six.moves.*`` itself.
    """
    import django.utils

    spec = importlib.util.spec_from_file_location("django.utils.six", importlib.util.find_spec("six").origin)
    six = importlib.util.module_from_spec(spec)
    sys.modules["django.utils.six"] = six
    spec.loader.exec_module(six)
    django.utils.six = six


def _import_axes_with_a_pkg_resources_stand_in():
    """django-axes 5.27.0, the last release for Django 2.2 (channels_example/logins.py), reads its own
    version with ``pkg_resources.get_distribution`` as ``axes`` and ``axes.apps`` load. The pinned
    setuptools (84.2.1) ships no ``pkg_resources``, so the two modules are imported here with a
    stand-in whose ``get_distribution`` answers from ``importlib.metadata``, and the stand-in is
    removed again: nothing else ever sees a ``pkg_resources`` that has only that one function.
    """
    import types
    from importlib import metadata

    stand_in = types.ModuleType("pkg_resources")
    stand_in.get_distribution = lambda name: types.SimpleNamespace(version=metadata.version(name))
    sys.modules["pkg_resources"] = stand_in
    try:
        import axes.apps  # noqa: F401 (and with it axes)
    finally:
        del sys.modules["pkg_resources"]
