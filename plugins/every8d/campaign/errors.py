"""Why a campaign stopped, as classes that say whether a retry of the task can help.

Messages hold counts and the campaign id, never numbers or texts.  Each error
carries the campaign summary so the operator can log and return it.
"""

from __future__ import annotations

from typing import Any

from every8d.errors import Every8dError, TerminalError, TransientError


class CampaignError(Every8dError):
    """A campaign stopped before every recipient was settled (retry decided by the subclass's marker)."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.summary = summary or {}


class BudgetExceededError(CampaignError, TerminalError):
    """The estimate is above ``max_points``: nothing was sent."""


class InsufficientCreditError(CampaignError, TransientError):
    """The account's credit does not cover the rest of the campaign (read twice before sending, or
    reported by the gateway as UNSEND).  Retryable: the account can be topped up meanwhile."""


class QuietHoursError(CampaignError, TerminalError):
    """It is quiet hours and the policy is ``reject``: run the task again after they end."""


class CampaignInterruptedError(CampaignError, TransientError):
    """A request got no answer, or the gateway could not be reached or refused a chunk temporarily.

    Safe to retry: the retry resolves chunks left in doubt before it sends anything new.
    """


class CampaignRefusedError(CampaignError, TerminalError):
    """The gateway refused a chunk with an error code; its recipients are back to ``pending``."""


class NeedsReviewError(CampaignError, TerminalError):
    """Some recipients could not be settled safely and wait for a person (state ``needs_review``)."""


class LeaseLostError(CampaignError, TransientError):
    """Another runner took this campaign's lease over: this runner stops without sending more.

    Whatever it still had to record went in as extra batches (see ``every8d_send_stale_batches``).
    """


class CampaignBusyError(CampaignError, TransientError):
    """Another live runner holds the campaign's lease (a zombie task still working): retry later."""
