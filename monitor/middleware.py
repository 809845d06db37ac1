from django.contrib.auth.middleware import LoginRequiredMiddleware


class LoginRequired(LoginRequiredMiddleware):
    """Django's LoginRequiredMiddleware, but it looks at the view before the user.

    Django's loads the session and the user of every request, even for views marked
    `login_not_required`. For the SSE stream that would hold a database connection for the
    stream's whole life (one per open page), and for `/healthz` it is a needless query.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not getattr(view_func, "login_required", True):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
