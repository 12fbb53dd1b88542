"""Background jobs: the API (`routes.bp`), RQ tasks and worker, the embedded runner. The row in `jobs` is the truth.

Importing the package builds nothing, so RQ can import `workspace.jobs.tasks` cheaply.
"""
