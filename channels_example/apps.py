"""The chat app's configuration: Django 2.2's security backports, daphne's bounds and one log
format installed, sockets closed on logout, each runworker's heartbeat started, SQLite tuned for workers that store
messages several times a second."""
from channels.signals import worker_process_ready
from django.apps import AppConfig
from django.db.backends.signals import connection_created

from channels_example import backports


class ChatConfig(AppConfig):
    name = "channels_example"

    def ready(self):
        # These use the models, which load with the apps.
        from channels_example import accounts, interface, logs
        from channels_example.chat import processes

        backports.install()
        interface.install()
        logs.install()
        accounts.connect_signals()
        worker_process_ready.connect(processes.start_worker_heartbeat)
        connection_created.connect(tune_sqlite)


def tune_sqlite(sender, connection, **kwargs):
    """Write-ahead logging, synced at checkpoints: a commit no longer waits for the disk
    (bench/history_cost.py measures storing), readers never wait for the writer, and several
    worker processes share the file. A power cut can lose the last moments of history, never corrupt it."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
