"""The state: job, part and batch states, the SQLite store, the folder contract, durable file
operations and where a finished input is archived. Imports only the foundation (daemon/*.py).
"""
