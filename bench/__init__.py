"""The zart-django benchmark suite: ``python -m bench`` (``--quick`` for a smoke run).

Each figure is measured beside its reference, in the same run and on the same database, so the
ratio stays fair on a noisy machine. One suite process runs per database (``bench.suite``); this
package's ``run`` module prepares the databases, runs the suites and prints the table.
"""
