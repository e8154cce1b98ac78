"""The ``batchd`` command line: main.py parses and dispatches; a module per command that has logic
of its own (status, cancel, abandon, retry, healthcheck, recover). Top floor: may import any other.
"""
