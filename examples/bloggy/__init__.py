"""Bloggy: a small blog service that protects its RPCs with Watchword.

Run it with ``python -m examples.bloggy``; see README.md next to this file.
"""
