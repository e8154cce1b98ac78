"""batchd: a daemon that turns a folder into a queue for the OpenAI Batch API."""

__version__ = "0.1.0"
