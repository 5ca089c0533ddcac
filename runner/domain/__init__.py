"""The report's vocabulary: run statuses, parameters and their validation, requests, timeouts, errors."""
