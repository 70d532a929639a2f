//! One catalog of the ways a call ends before (or instead of) a conversation: for each, what an
//! inbound caller is answered in SIP, the call's `end_reason`, whether an outbound attempt is
//! dialed again, and the API's problem type where the API reports it. Outbound final responses
//! are read through the same table ([`Outcome::of_final_response`]).

use axum::http::StatusCode;

use crate::domain::EndReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Inbound: no trunk's `inbound_cidrs` contains the source address.
    SourceNotAllowed,
    /// Inbound: the dialed number is no org's DID. Outbound: the carrier says the number does
    /// not exist (404, 484, 604).
    InvalidNumber,
    /// Inbound: the org has no active inbound agent.
    NoAgent,
    /// The org's minutes are used up.
    QuotaExhausted,
    /// No capacity on this node (RTP ports, transcription, shutting down); try again later.
    NoCapacity,
    /// The callee is busy (486, 600).
    Busy,
    /// The callee declined (603).
    Rejected,
    /// Nobody answered (408, 480, or our ring timeout's CANCEL).
    NoAnswer,
    /// The carrier refused our credentials (401/407 after we answered its challenge): the
    /// trunk's configuration is wrong, and dialing again would fail the same way.
    TrunkAuth,
    /// The carrier or the way to it failed (403, 5xx, no response, an unusable answer).
    TrunkError,
    /// Something failed here (the store, the call's agent gone).
    Internal,
}

/// Outbound: which wait (`[telephony.retry]`) comes before a failed attempt is dialed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryWait {
    /// `busy_seconds`: the callee is on another call.
    Busy,
    /// `no_answer_seconds`: the callee is away.
    NoAnswer,
    /// `trunk_error_seconds`: the carrier or this node had trouble.
    Trouble,
}

/// What one outcome means everywhere.
struct Entry {
    /// Inbound: the final response the caller gets.
    sip: (u16, &'static str),
    end_reason: EndReason,
    /// Outbound: whether (and after which wait) the attempt is dialed again while attempts
    /// remain.
    retry: Option<RetryWait>,
}

/// A problem+json type the API answers with: HTTP status, type slug, title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
}

/// How long a caller refused for lack of capacity (or our failure) is asked to wait.
const RETRY_AFTER_SECS: u32 = 5;

impl Outcome {
    fn entry(self) -> Entry {
        use EndReason as R;
        use RetryWait::{Busy, NoAnswer, Trouble};
        let (sip, end_reason, retry) = match self {
            Outcome::SourceNotAllowed => ((403, "Forbidden"), R::Rejected, None),
            Outcome::InvalidNumber => ((404, "Not Found"), R::InvalidNumber, None),
            Outcome::NoAgent => ((480, "Temporarily Unavailable"), R::Error, None),
            Outcome::QuotaExhausted => ((403, "Minutes Quota Exhausted"), R::QuotaExhausted, None),
            Outcome::NoCapacity => ((503, "Service Unavailable"), R::Error, Some(Trouble)),
            Outcome::Busy => ((486, "Busy Here"), R::Busy, Some(Busy)),
            Outcome::Rejected => ((603, "Decline"), R::Rejected, None),
            Outcome::NoAnswer => (
                (480, "Temporarily Unavailable"),
                R::NoAnswer,
                Some(NoAnswer),
            ),
            Outcome::TrunkAuth => ((403, "Forbidden"), R::TrunkError, None),
            Outcome::TrunkError => ((502, "Bad Gateway"), R::TrunkError, Some(Trouble)),
            Outcome::Internal => ((500, "Server Internal Error"), R::Error, Some(Trouble)),
        };
        Entry {
            sip,
            end_reason,
            retry,
        }
    }

    /// Outbound: what a final failure response to our INVITE means. 401/407 only reach here
    /// when our answer to the challenge was refused (or we have no credentials).
    pub fn of_final_response(status: u16) -> Outcome {
        match status {
            486 | 600 => Outcome::Busy,
            603 => Outcome::Rejected,
            408 | 480 | 487 => Outcome::NoAnswer,
            404 | 484 | 604 => Outcome::InvalidNumber,
            401 | 407 => Outcome::TrunkAuth,
            _ => Outcome::TrunkError,
        }
    }

    /// Inbound: the status, reason phrase and `Retry-After` (seconds) the caller is answered.
    pub fn sip_response(self) -> (u16, &'static str, Option<u32>) {
        let (status, reason) = self.entry().sip;
        let retry_after = matches!(self, Outcome::NoCapacity | Outcome::Internal);
        (status, reason, retry_after.then_some(RETRY_AFTER_SECS))
    }

    pub fn end_reason(self) -> EndReason {
        self.entry().end_reason
    }

    /// Outbound: whether (after which wait) a failed attempt is dialed again while attempts
    /// remain.
    pub fn retry(self) -> Option<RetryWait> {
        self.entry().retry
    }

    /// The API's problem type for this outcome, where the API reports it.
    pub fn problem(self) -> Option<Problem> {
        match self {
            Outcome::QuotaExhausted => Some(Problem {
                status: StatusCode::PAYMENT_REQUIRED,
                slug: "quota-exhausted",
                title: "Minutes quota exhausted",
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carrier_responses_map_to_the_documented_outcomes() {
        use RetryWait::{Busy, NoAnswer, Trouble};
        let cases = [
            (486, EndReason::Busy, Some(Busy)),
            (600, EndReason::Busy, Some(Busy)),
            (603, EndReason::Rejected, None),
            (408, EndReason::NoAnswer, Some(NoAnswer)),
            (480, EndReason::NoAnswer, Some(NoAnswer)),
            (487, EndReason::NoAnswer, Some(NoAnswer)),
            (404, EndReason::InvalidNumber, None),
            (484, EndReason::InvalidNumber, None),
            (604, EndReason::InvalidNumber, None),
            (401, EndReason::TrunkError, None),
            (407, EndReason::TrunkError, None),
            (403, EndReason::TrunkError, Some(Trouble)),
            (488, EndReason::TrunkError, Some(Trouble)),
            (500, EndReason::TrunkError, Some(Trouble)),
            (503, EndReason::TrunkError, Some(Trouble)),
        ];
        for (status, reason, retry) in cases {
            let outcome = Outcome::of_final_response(status);
            assert_eq!(outcome.end_reason(), reason, "{status}");
            assert_eq!(outcome.retry(), retry, "{status}");
        }
    }

    #[test]
    fn inbound_refusals_answer_as_designed() {
        assert_eq!(
            Outcome::QuotaExhausted.sip_response(),
            (403, "Minutes Quota Exhausted", None)
        );
        assert_eq!(
            Outcome::NoCapacity.sip_response(),
            (503, "Service Unavailable", Some(5))
        );
        assert_eq!(Outcome::InvalidNumber.sip_response().0, 404);
        assert_eq!(Outcome::NoAgent.sip_response().0, 480);
        assert_eq!(Outcome::SourceNotAllowed.sip_response().0, 403);
        assert_eq!(
            Outcome::QuotaExhausted.problem().map(|p| p.status),
            Some(StatusCode::PAYMENT_REQUIRED)
        );
    }
}
