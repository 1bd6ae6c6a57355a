"""Jobs that only tests enqueue, to see how a worker copes with trouble."""

from django.db import connection


def drop_own_connection():
    """Terminate this job's database connection, then fail."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    raise RuntimeError("unreachable: the connection is gone")
