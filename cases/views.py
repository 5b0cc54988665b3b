from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from .selectors import cases_for_user

CASES_PER_PAGE = 50


@login_required
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """The cases the user may see, most overdue first, 50 a page.

    A fixed number of queries whatever the number of cases: the session and user, the
    user's permissions, one COUNT for the pager and one SELECT with every related row
    joined in.
    """
    cases = (
        cases_for_user(request.user)
        .select_related("pending_stage")
        # The id breaks ties so that a case never shows on two pages or on none.
        .order_by("-days_past_due", "-opened_at", "-id")
    )
    page = Paginator(cases, CASES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "cases/home.html", {"page": page})
