//! The calling side: INVITE with our offer, provisional/final handling, digest retry on
//! 401/407, ACK for 2xx, CANCEL.

use std::time::Instant;

use bytes::Bytes;

use super::dialog::{Call, Outbound, Phase, Role};
use super::{CallError, CallEvent, CallRef, EndReason, Endpoint, PlaceCall, Tsx};
use crate::auth::{authorization, pick_challenge};
use crate::message::{new_branch, new_call_id, new_tag, HeaderName, Method, Request, Response};
use crate::sdp::{self, LocalMedia, Negotiated, SessionDescription};
use crate::transaction::{ClientInvite, TsxKey};

impl Endpoint {
    /// Sends an INVITE with an SDP offer; progress arrives as [`CallEvent`]s for the handle.
    pub fn place_call(&mut self, pc: PlaceCall, now: Instant) -> CallRef {
        let handle = self.new_call_ref();
        let session = fastrand::u64(1..1 << 62);
        let offer = sdp::offer(&pc.media, session, 1);
        let mut call = Call {
            role: Role::Uac,
            phase: Phase::Calling,
            call_id: new_call_id(),
            local_tag: new_tag(),
            remote_tag: None,
            local_uri: format!("<{}>", pc.from),
            remote_uri: format!("<{}>", pc.target),
            remote_target: pc.target.clone(),
            route_set: Vec::new(),
            local_cseq: 0,
            remote_cseq: 0,
            peer: pc.peer,
            transport: pc.transport,
            invite_tsx: None,
            invite_cseq: 1,
            media: Some(pc.media),
            sdp_session: session,
            sdp_version: 1,
            reinvite_pending: false,
            established_at: None,
            outbound: None,
            ringing: None,
        };
        let mut invite = call.request(Method::Invite, &self.via_host, &self.contact);
        invite
            .headers
            .push(HeaderName::UserAgent, self.config.user_agent.clone());
        invite
            .headers
            .push(HeaderName::Allow, super::incoming::ALLOW);
        for (name, value) in pc.headers {
            invite.headers.push(name, value);
        }
        invite.headers.push(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        invite.body = Bytes::from(offer.to_string());
        call.invite_cseq = call.local_cseq;
        call.outbound = Some(Box::new(Outbound {
            invite: invite.clone(),
            credentials: pc.credentials,
            auth_tried: false,
            cancel_wanted: false,
            got_provisional: false,
        }));
        self.dialogs.insert(
            (call.call_id.as_str().into(), call.local_tag.as_str().into()),
            handle,
        );
        self.calls.insert(handle, call);
        self.start_invite(handle, invite, now);
        handle
    }

    /// Re-INVITEs an established call with a new offer for `media` (e.g. `Direction::SendOnly`
    /// to hold, `SendRecv` to resume). The outcome arrives as `MediaUpdated` or `UpdateRejected`.
    pub fn update_media(
        &mut self,
        call: CallRef,
        media: LocalMedia,
        now: Instant,
    ) -> Result<(), CallError> {
        let c = self
            .calls
            .get_mut(&call)
            .filter(|c| c.phase == Phase::Established && !c.reinvite_pending)
            .ok_or(CallError::NoSuchCall)?;
        c.sdp_version += 1;
        let offer = sdp::offer(&media, c.sdp_session, c.sdp_version);
        let mut invite = c.request(Method::Invite, &self.via_host, &self.contact);
        invite.headers.push(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        invite.body = Bytes::from(offer.to_string());
        c.invite_cseq = c.local_cseq;
        c.media = Some(media);
        c.reinvite_pending = true;
        self.start_invite(call, invite, now);
        Ok(())
    }

    fn start_invite(&mut self, handle: CallRef, invite: Request, now: Instant) {
        let Some(c) = self.calls.get(&handle) else {
            return;
        };
        let (peer, transport) = (c.peer, c.transport);
        let Some(key) = TsxKey::client(&invite.headers) else {
            return;
        };
        let tsx = ClientInvite::new(
            invite,
            super::reliability(transport),
            self.config.timers,
            now,
        );
        let id = self.insert_tsx(
            Tsx::ClientInvite(Box::new(tsx)),
            key,
            peer,
            transport,
            Some(handle),
            now,
        );
        if let Some(c) = self.calls.get_mut(&handle) {
            c.invite_tsx = Some(id);
        }
    }

    pub(super) fn on_invite_response(
        &mut self,
        call: CallRef,
        tsx: u64,
        resp: Response,
        now: Instant,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.invite_tsx != Some(tsx) {
            return;
        }
        if resp.status >= 300 && c.reinvite_pending {
            c.reinvite_pending = false;
            self.emit(
                call,
                CallEvent::UpdateRejected {
                    status: resp.status,
                },
            );
            return;
        }
        match resp.status {
            100..=199 => {
                let Some(out) = c.outbound.as_mut() else {
                    return;
                };
                let first = !out.got_provisional;
                out.got_provisional = true;
                if out.cancel_wanted && first {
                    self.cancel_outbound(call, now);
                } else if resp.status > 100 {
                    self.emit(
                        call,
                        CallEvent::Progress {
                            status: resp.status,
                        },
                    );
                }
            }
            200..=299 => self.on_invite_2xx(call, resp, now),
            401 | 407 => {
                if !self.retry_with_auth(call, &resp, now) {
                    self.fail_outbound(
                        call,
                        tsx,
                        resp.status,
                        &String::from_utf8_lossy(&resp.reason),
                    );
                }
            }

            status => self.fail_outbound(call, tsx, status, &String::from_utf8_lossy(&resp.reason)),
        }
    }

    fn on_invite_2xx(&mut self, call: CallRef, resp: Response, now: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.reinvite_pending {
            c.reinvite_pending = false;
            match self.ack_2xx(call, &resp) {
                Some(negotiated) => self.emit(call, CallEvent::MediaUpdated { negotiated }),
                None => self.emit(call, CallEvent::UpdateRejected { status: 488 }),
            }
            return;
        }
        if c.phase == Phase::Established {
            // Retransmitted 2xx: our ACK was lost.
            self.ack_2xx(call, &resp);
            return;
        }
        let h = &resp.headers;
        c.remote_tag = h.to_hdr().ok().and_then(|t| t.tag().map(str::to_owned));
        if let Ok(contact) = h.contact() {
            c.remote_target = contact.uri_text.to_owned();
        }
        c.route_set = h
            .name_addrs(&HeaderName::RecordRoute)
            .map(|v| {
                v.iter()
                    .rev()
                    .map(|n| Bytes::from(format!("<{}>", n.uri_text)))
                    .collect()
            })
            .unwrap_or_default();
        c.phase = Phase::Established;
        c.established_at = Some(now);
        let cancel_wanted = c.outbound.as_ref().is_some_and(|o| o.cancel_wanted);
        match self.ack_2xx(call, &resp) {
            Some(negotiated) if !cancel_wanted => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.outbound = None;
                }
                self.emit(call, CallEvent::Answered { negotiated });
            }
            // Answered after we hung up, or with an unusable answer: end it right away.
            Some(_) => {
                self.send_bye(call, now);
                self.emit(
                    call,
                    CallEvent::Ended {
                        reason: EndReason::LocalBye,
                    },
                );
            }
            None => {
                self.send_bye(call, now);
                self.emit(
                    call,
                    CallEvent::Failed {
                        status: 488,
                        reason: "Not Acceptable Here".to_owned(),
                    },
                );
            }
        }
    }

    /// ACKs a 2xx to our INVITE (initial, re-INVITE or retransmission) and returns what its SDP
    /// answer agrees to (`None`: no usable answer).
    fn ack_2xx(&mut self, call: CallRef, resp: &Response) -> Option<Negotiated> {
        let c = self.calls.get_mut(&call)?;
        let ack = c.request(Method::Ack, &self.via_host, &self.contact);
        let negotiated = match (SessionDescription::parse(&resp.body), &c.media) {
            (Ok(answer), Some(media)) => sdp::apply_answer(&answer, media).ok(),
            _ => None,
        };
        let (peer, transport) = (c.peer, c.transport);
        self.transmit(transport, peer, ack.to_bytes());
        negotiated
    }

    fn retry_with_auth(&mut self, call: CallRef, resp: &Response, now: Instant) -> bool {
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let Some(out) = c.outbound.as_mut() else {
            return false;
        };
        let Some(creds) = out.credentials.clone().filter(|_| !out.auth_tried) else {
            return false;
        };
        let (challenge_name, answer_name) = if resp.status == 407 {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        } else {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        };
        let Some(challenge) = pick_challenge(
            resp.headers
                .get_all(&challenge_name)
                .filter_map(|v| std::str::from_utf8(v).ok()),
        ) else {
            return false;
        };
        let mut invite = out.invite.clone();
        let uri = String::from_utf8_lossy(&invite.uri).into_owned();
        let Some(value) = authorization(&challenge, &creds, "INVITE", &uri, 1) else {
            return false;
        };
        out.auth_tried = true;
        c.local_cseq += 1;
        c.invite_cseq = c.local_cseq;
        let transport = c.transport.as_str();
        invite.headers.replace_first(
            &HeaderName::Via,
            format!(
                "SIP/2.0/{transport} {};branch={};rport",
                self.via_host,
                new_branch()
            ),
        );
        invite
            .headers
            .set(HeaderName::CSeq, format!("{} INVITE", c.local_cseq));
        invite.headers.push(answer_name, value);
        out.invite = invite.clone();
        out.got_provisional = false;
        self.start_invite(call, invite, now);
        true
    }

    pub(super) fn fail_outbound(&mut self, call: CallRef, tsx: u64, status: u16, reason: &str) {
        let Some(c) = self
            .calls
            .get_mut(&call)
            .filter(|c| c.invite_tsx == Some(tsx))
        else {
            return;
        };
        if c.reinvite_pending {
            // A re-INVITE timed out: the call itself goes on.
            c.reinvite_pending = false;
            self.emit(call, CallEvent::UpdateRejected { status });
        } else if c.phase == Phase::Calling {
            self.remove_call(call);
            self.emit(
                call,
                CallEvent::Failed {
                    status,
                    reason: reason.to_owned(),
                },
            );
        }
    }

    /// CANCEL is only allowed after a provisional response (RFC 3261 §9.1); before that the
    /// wish is remembered and acted on when one arrives (or a 2xx gets a BYE).
    pub(super) fn cancel_outbound(&mut self, call: CallRef, now: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let (peer, transport) = (c.peer, c.transport);
        let Some(out) = c.outbound.as_mut() else {
            return;
        };
        out.cancel_wanted = true;
        if out.got_provisional {
            let cancel = out.invite.cancel();
            self.send_non_invite(&cancel, peer, transport, now);
        }
    }

    /// A 2xx retransmission whose INVITE transaction is already gone (RFC 6026 lets the
    /// transaction end after Timer M): if the dialog still exists, repeat the ACK.
    pub(super) fn reack_stray_2xx(&mut self, resp: &Response) {
        let is_invite_2xx = resp
            .headers
            .cseq()
            .is_ok_and(|c| c.method == Method::Invite)
            && (200..300).contains(&resp.status);
        let local_tag = resp
            .headers
            .from_hdr()
            .ok()
            .and_then(|f| f.tag().map(str::to_owned));
        let (Some(tag), Ok(call_id), true) = (local_tag, resp.headers.call_id(), is_invite_2xx)
        else {
            return;
        };
        let Some(&call) = self.dialogs.get(&(call_id.into(), tag.as_str().into())) else {
            return;
        };
        let Some(c) = self
            .calls
            .get_mut(&call)
            .filter(|c| c.role == Role::Uac && c.phase == Phase::Established)
        else {
            return;
        };
        let ack = c.request(Method::Ack, &self.via_host, &self.contact);
        let (peer, transport) = (c.peer, c.transport);
        self.transmit(transport, peer, ack.to_bytes());
    }
}
