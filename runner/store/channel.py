"""The channel on which workers listen for new requests; `submit` and requeues notify it."""

from __future__ import annotations

import psycopg
from psycopg import sql

QUEUE_CHANNEL = "deal_aging_queue"


def notify_workers(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("notify {}").format(sql.Identifier(QUEUE_CHANNEL)))
