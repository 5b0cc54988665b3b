"""Outbound channels: SMS (console, locmem, Twilio) and email (Django's mail backends).

Every channel raises the errors in ``base``, so dispatch decides retry or give-up without
knowing which provider it talked to.
"""
