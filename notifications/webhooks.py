"""Twilio webhooks (CONTRACT section 8): CSRF-exempt, signature-checked, idempotent."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from cases.models import Borrower

from .models import InboundSms
from .optouts import OPT_IN_KEYWORDS, OPT_OUT_KEYWORDS, keyword_of, sms_opt_in_record, sms_opt_out_record
from .receipts import receipt_record

logger = logging.getLogger(__name__)


def _signature_ok(request: HttpRequest) -> bool:
    """Validate X-Twilio-Signature against the URL Twilio called: PUBLIC_BASE_URL + path,
    since behind a proxy the request's own host and scheme are not what Twilio signed."""
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not settings.TWILIO_AUTH_TOKEN:
        return False
    url = settings.PUBLIC_BASE_URL + request.get_full_path()
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, request.POST.dict(), signature)


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    if not _signature_ok(request):
        return HttpResponseForbidden("Invalid or missing X-Twilio-Signature.")
    sid = request.POST.get("MessageSid", "")
    status = request.POST.get("MessageStatus", "")
    if not sid or not status:
        return HttpResponse("MessageSid and MessageStatus are required.", status=400)
    receipt_record(provider_id=sid, status=status, error_code=request.POST.get("ErrorCode", ""))
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    if not _signature_ok(request):
        return HttpResponseForbidden("Invalid or missing X-Twilio-Signature.")
    sender = request.POST.get("From", "")
    body = request.POST.get("Body", "")
    sid = request.POST.get("MessageSid", "")
    keyword = keyword_of(body)
    action = "opt_out" if keyword in OPT_OUT_KEYWORDS else "opt_in" if keyword in OPT_IN_KEYWORDS else ""
    try:
        with transaction.atomic():
            InboundSms.objects.create(
                provider_id=sid, from_number=sender, to_number=request.POST.get("To", ""), body=body, action=action
            )
            if action == "opt_out":
                sms_opt_out_record(phone=sender, source="keyword", keyword=keyword)
            elif action == "opt_in":
                sms_opt_in_record(phone=sender, keyword=keyword)
    except IntegrityError:
        pass  # Twilio retried a message we already handled: answer the same way, change nothing.
    language = Borrower.objects.filter(phone=sender).values_list("language", flat=True).first() or "en"
    reply = MessagingResponse()
    with translation.override(language):
        if action == "opt_out":
            reply.message(
                translation.gettext(
                    "You will no longer receive text messages from us. Reply START to receive them again."
                )
            )
        elif action == "opt_in":
            reply.message(translation.gettext("You will receive text messages from us again. Reply STOP to opt out."))
    return HttpResponse(str(reply), content_type="application/xml")
