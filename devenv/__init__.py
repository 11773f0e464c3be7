"""Real services for development: throwaway PostgreSQL clusters, a local S3 server, the demo.

Not part of the shipped package. The test suite's fixtures and ``scripts/demo`` both build
on these modules, so what the demo shows is what the tests exercise.
"""
