"""PostgreSQL: connections, report_run headers, liveness, the queue, retention and the readers' queries (bound parameters, no command-line words)."""
