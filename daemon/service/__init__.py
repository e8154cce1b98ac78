"""The service: every call to the Batch API goes through one seam (``batch_service.BatchService``,
with batchd's own dataclasses in ``batch_info``; ``openai_service`` implements it over the SDK, with
its reply checks and SDK error kinds), plus credentials, retries, what holds submissions back,
submission, polling (lost, overdue and stuck batches), webhooks and deleting remote files. Imports
the foundation, state/ and intake/.
"""
