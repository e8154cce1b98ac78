"""The state: job, part and batch states and their transitions (states.py), the SQLite store
(schema.py, rows.py, database.py, store.py and its query groups), the folder contract, durable
file operations and where a finished input is archived. Imports only the foundation (daemon/*.py).
"""
