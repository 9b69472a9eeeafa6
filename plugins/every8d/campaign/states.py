"""The closed vocabularies of the send ledger: recipient states, chunk states, reject reasons.

``Literal`` types with their valid values derived by ``get_args`` (dlt's habit),
so a typo in a state is a type error and the docs can list the values from code.
"""

from __future__ import annotations

from typing import Literal, get_args

RecipientState = Literal[
    "pending",  # planned, no request has carried it yet
    "in_flight",  # a request carrying it left; no answer recorded yet
    "sent",  # the gateway accepted it (batch_id known)
    "sent_unconfirmed",  # resolving a lost answer: the 24 h filter says it already got this text
    "unsent_no_credit",  # accepted in a batch but not sent for lack of credit (status 301)
    "unsent_international",  # not sent: international SMS not enabled on the account (status 500)
    "needs_review",  # outcome unknown and could not be resolved safely: a person decides
    "cancelled",  # a scheduled message erased by the cancel operator (points refunded)
]
ChunkState = Literal[
    "pending",
    "in_flight",
    "sent",
    # resolved through the 24 h filter: its recipients have the text (``sent_unconfirmed``) but the batch
    # the gateway issued for them is not known yet; adopted from status pushes (.adoption), then ``sent``
    "awaiting_batch",
    "needs_review",
]
RejectReason = Literal[
    "missing_number",
    "invalid_number",
    "not_mobile",
    "international_not_allowed",
    "render_error",
    "empty_text",
    "bad_send_time",
    "quiet_hours",
    "duplicate",
    "suppressed",
]
Route = Literal["sms", "param", "mms"]
CampaignState = Literal["planning", "planned", "done"]

RECIPIENT_STATES: tuple[str, ...] = get_args(RecipientState)
CHUNK_STATES: tuple[str, ...] = get_args(ChunkState)
REJECT_REASONS: tuple[str, ...] = get_args(RejectReason)

#: States in which a recipient may still be texted by this campaign.
OPEN_STATES = ("pending", "in_flight")
#: States in which the gateway has (or most likely has) the message.
DELIVERED_TO_GATEWAY = ("sent", "sent_unconfirmed", "cancelled")
