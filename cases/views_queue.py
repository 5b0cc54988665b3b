"""My queue: the collector's live cases, most urgent first, filterable, paginated."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from .forms import QueueFilterForm
from .views_queries import QueueFilters, queue_for_collector, queue_stages

QUEUE_PER_PAGE = 25


@login_required
@require_safe
def queue(request: HttpRequest) -> HttpResponse:
    """A fixed number of queries: session and user, permissions, stages (the filter's
    choices), the pager's COUNT and one SELECT with the promise columns as subqueries."""
    stages = queue_stages()
    form = QueueFilterForm(request.GET, stages=stages)
    filters = QueueFilters()
    if form.is_valid():
        data = form.cleaned_data
        filters = QueueFilters(
            stage=data["stage"],
            min_dpd=data["min_dpd"],
            max_dpd=data["max_dpd"],
            broken_promise=data["broken_promise"],
        )
    cases = queue_for_collector(user=request.user, filters=filters)
    page = Paginator(cases, QUEUE_PER_PAGE).get_page(request.GET.get("page"))
    # The pager's links keep the filters.
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "filter_query": query.urlencode()}
    if request.htmx and request.htmx.target == "queue-results":
        return render(request, "cases/_queue_results.html", context)
    return render(request, "cases/queue.html", context)
