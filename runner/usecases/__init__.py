"""What the commands do: execute runs, serve the queue as a worker."""
