"""ASGI entry point: daphne serves every HTTP request, the SSE stream included, through Django."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitor.settings")

application = get_asgi_application()
