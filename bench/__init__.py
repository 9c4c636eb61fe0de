"""Watchword's benchmark: ratios measured side by side in one run (issue 8).

``make bench`` (``python -m bench``) starts real ``watchword serve`` processes on a real
PostgreSQL, seeds them (:mod:`bench.seed`), drives them with h2load (:mod:`bench.h2load`)
and prints a table of ratios against targets (:mod:`bench.results`); ``--help`` lists
the flags. The scenarios live in :mod:`bench.scenarios`, one module per kind of question.
"""
