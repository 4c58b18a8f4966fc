"""Fixtures that start real servers. Each stops what it started, by PID."""
import os
import subprocess
import uuid

import pytest

from tests.servers import LOAD, Process, free_port, manage


@pytest.fixture(autouse=True)
def fresh_room_state():
    """Each test starts with no numbering, recent history, members or ordering state kept in this process."""
    from channels_example.backends.shards import PerDeployment

    PerDeployment.forget_all()
    yield
    PerDeployment.forget_all()


@pytest.fixture
def sqlite_env(tmp_path):
    """Environment for a server process with its own migrated SQLite database."""
    env = dict(os.environ, SQLITE_PATH=str(tmp_path / "db.sqlite3"), REDIS_URL="", **LOAD)
    subprocess.run(manage("migrate", "--verbosity", "0"), env=env, check=True)
    return env


@pytest.fixture
def start_runserver(tmp_path, sqlite_env):
    """A factory: ``start_runserver(**env)`` starts `manage.py runserver` with the seed's in-memory
    layer, as scripts/run starts it; an env value of None removes that variable."""
    servers = []

    def start(**env):
        port = free_port()
        merged = {key: value for key, value in dict(sqlite_env, **env).items() if value is not None}
        server = Process("runserver", manage("runserver", "127.0.0.1:%d" % port, "--noreload"),
                         env=merged, port=port, log_path=tmp_path / ("runserver-%d.log" % len(servers)))
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def runserver(start_runserver):
    return start_runserver()


CHROMIUM = "/usr/bin/chromium"
# Flags for Debian's Chromium on a machine with no outside network: without the
# background-networking ones its connections are refused, many at a time.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; Playwright's own browsers are never downloaded."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture
def new_page(browser):
    """Open pages, each in its own browser context (one person each); all are closed after the test."""
    contexts = []

    def open_page(**context_options):
        context = browser.new_context(**context_options)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def production(tmp_path):
    """A factory: ``production(workers=2, daphnes=1, shards=1, database_url=None)`` starts the real topology."""
    from tests.production import Stack

    stacks = []

    def start(**shape):
        stack = Stack(tmp_path)
        stacks.append(stack)
        return stack.start(**shape)

    yield start
    for stack in stacks:
        stack.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL for the whole test run (channels_example.topology); each test gets its own database."""
    from channels_example.topology import Postgres

    server = Postgres().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """Run the test on each database: None for SQLite (each Stack has its own file), else a new PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_server").create_database("test_%s" % uuid.uuid4().hex[:12])


@pytest.fixture
def redis_url(tmp_path):
    """A real redis-server on a free loopback port, started as scripts/prod starts it."""
    from channels_example import topology

    port = free_port()
    server = Process("redis", topology.redis_argv(port, tmp_path), port=port, log_path=tmp_path / "redis.log")
    server.start()
    yield "redis://127.0.0.1:%d/0" % port
    server.stop()


@pytest.fixture
def as_default_layer():
    """``as_default_layer(layer)``: make ``layer`` the default channel layer for the test, as
    daphne and the workers have theirs; the chat's stores then keep their state on it."""
    from channels import DEFAULT_CHANNEL_LAYER, channel_layers
    from channels.asgi import ChannelLayerWrapper

    from channels_example.backends.shards import PerDeployment

    previous = channel_layers[DEFAULT_CHANNEL_LAYER]

    def install(layer):
        channel_layers.set(DEFAULT_CHANNEL_LAYER, ChannelLayerWrapper(layer, DEFAULT_CHANNEL_LAYER, previous.routing))
        PerDeployment.forget_all()
        return layer

    yield install
    channel_layers.set(DEFAULT_CHANNEL_LAYER, previous)
    PerDeployment.forget_all()


@pytest.fixture
def redis_layer(redis_url, settings, as_default_layer):
    """The project's Redis layer on a real redis-server, configured as settings.py does, as the default layer."""
    from channels_example.layers import RedisChannelLayer

    return as_default_layer(RedisChannelLayer(**dict(settings.REDIS_TRANSPORT, hosts=[redis_url])))


@pytest.fixture
def stock_layer(redis_url, settings, as_default_layer):
    """asgi_redis's own layer, unchanged, on a real redis-server (REDIS_LAYER=stock), as the default layer."""
    import asgi_redis

    return as_default_layer(asgi_redis.RedisChannelLayer(**dict(settings.STOCK_TRANSPORT, hosts=[redis_url])))


@pytest.fixture
def memory_layer(settings, as_default_layer):
    """A new in-memory layer (runserver's), configured as settings.py does, as the default layer."""
    from channels_example.layers import InMemoryChannelLayer

    return as_default_layer(InMemoryChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"]))
