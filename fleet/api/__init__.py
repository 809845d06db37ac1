"""The JSON API under /api/v1/ (django-ninja): workers, labs, runs and the audit, and the
actions, through the same functions and permissions as the pages. See README: API."""
