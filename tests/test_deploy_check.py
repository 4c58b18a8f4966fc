"""`manage.py check --deploy` is clean under the production settings (docs/security.md), run as an
operator would, in a process of its own with the servers' environment and HTTPS=1."""
import secrets
import subprocess

from django.test import override_settings

from channels_example.topology import production_env
from tests.servers import manage


def check_deploy(**env):
    environment = production_env("redis://127.0.0.1:6379/0", SECRET_KEY=secrets.token_urlsafe(50),
                                 ALLOWED_HOSTS="chat.example.com", **env)
    return subprocess.run(manage("check", "--deploy", "--fail-level", "WARNING"), env=environment,
                          capture_output=True, text=True)


def test_check_deploy_is_clean_behind_a_tls_proxy():
    checked = check_deploy(HTTPS="1")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "System check identified no issues (2 silenced)."


def test_without_https_check_deploy_names_what_plain_http_lacks():
    checked = check_deploy()
    assert checked.returncode == 1
    found = {code for code in ("W004", "W008", "W012", "W016") if "(security.%s)" % code in checked.stderr}
    assert found == {"W004", "W008", "W012", "W016"}


@override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_behind_the_proxy_a_page_over_http_is_sent_to_https_but_not_what_daphne_is_asked_directly(client, db):
    page = client.get("/", HTTP_HOST="127.0.0.1")
    metrics = client.get("/metrics", HTTP_HOST="127.0.0.1")
    through_the_proxy = client.get("/", HTTP_HOST="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
    assert (page.status_code, page["Location"]) == (301, "https://127.0.0.1/")
    assert metrics.status_code == 200
    assert through_the_proxy.status_code == 200
