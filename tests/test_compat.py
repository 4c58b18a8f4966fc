"""The 2017 stack runs on each supported Python: channels_example/compat.py does what that Python
needs and nothing more, before Django's apps load, in every entry point.

manage.py (runserver, runworker), daphne and the tests themselves are started by the end-to-end
tests; the WSGI entry point, which nothing else here serves, is started below in a process of its own.
"""
import subprocess
import sys

import django.utils.six
import six

from tests.servers import ROOT

WSGI_GET_PAGE = """
import wsgiref.util
from channels_example.wsgi import application

environ = {"PATH_INFO": "/", "HTTP_HOST": "127.0.0.1"}
wsgiref.util.setup_testing_defaults(environ)
statuses = []
body = b"".join(application(environ, lambda status, headers: statuses.append(status)))
print(statuses[0], b"<title>" in body)
"""


def test_django_utils_six_is_djangos_own_on_3_11_and_the_maintained_six_from_3_12():
    expected = "1.10.0" if sys.version_info < (3, 12) else six.__version__
    assert django.utils.six.__version__ == expected


def test_six_moves_import_through_django_utils_six_as_channels_staticfiles_does():
    from django.utils.six.moves.urllib.parse import urlparse
    from django.utils.six.moves.urllib.request import url2pathname

    assert url2pathname(urlparse("http://127.0.0.1:8000/static/chat.js").path) == "/static/chat.js"


def test_the_wsgi_entry_point_serves_the_page(sqlite_env):
    # A server process, so DEBUG is off and SECRET_KEY must be given (settings.SERVER_PROCESS).
    env = dict(sqlite_env, SECRET_KEY="wsgi-test-only")
    served = subprocess.run([sys.executable, "-c", WSGI_GET_PAGE], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert served.returncode == 0, served.stderr
    assert served.stdout.split() == ["200", "OK", "True"]


def test_django_axes_reads_its_version_without_pkg_resources_and_no_stand_in_is_left_behind():
    import axes

    assert axes.__version__ == "5.27.0"
    assert "pkg_resources" not in sys.modules
