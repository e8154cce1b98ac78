"""The engine: the main loop, and ``batchd run``'s set-up and shutdown around it."""
