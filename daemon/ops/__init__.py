"""Operating the daemon on a host: signals, sd_notify, the metrics endpoint, the seed-script import,
the lost-state guard, and the part and job rebuilders of ``batchd recover``. Imports every floor below.
"""
