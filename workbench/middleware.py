"""Request guards that every view relies on."""

from django.http import HttpRequest, HttpResponseBadRequest


class RejectNulBytesMiddleware:
    """A NUL character in a query string is never meant: answer 400.

    PostgreSQL cannot store or compare text holding NUL, so such a filter
    would otherwise end as a 500 deep in a query. Form fields refuse NUL on
    their own (Django's forms validate it)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if any(
            "\x00" in value for values in request.GET.lists() for value in values[1]
        ):
            return HttpResponseBadRequest("NUL characters are not allowed.")
        if any("\x00" in key for key in request.GET):
            return HttpResponseBadRequest("NUL characters are not allowed.")
        return self.get_response(request)
