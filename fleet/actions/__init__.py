"""Operator actions: one function per action, taking the acting user and the target.

Each checks the action's own permission, calls AWS or CML, and records an audit entry
(`ActionEntry`) together with the state it changes and the change-log row that updates every
page showing the target, in one transaction. Long actions (EC2 start, stop and terminate,
licence registration) record a pending state at once and settle in a django-q2 task.
The pages (the Refresh buttons too: `refresh.py`), `manage.py` commands and tasks all go
through these functions; a command acts as the system, named with the OS account that ran it.
"""
