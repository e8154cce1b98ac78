"""The service: every call to the Batch API (remote, SDK error kinds, reply checks, credentials,
retries), what holds submissions back, submission, polling (lost, overdue and stuck batches),
webhooks and deleting remote files. Imports the foundation, state/ and intake/.
"""
