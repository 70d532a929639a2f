//! The answering side: incoming INVITEs, the application's answer/reject/challenge, ACK
//! tracking, re-INVITEs (hold) and hangup.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::dialog::{Call, Phase, Role};
use super::{
    AuthStatus, CallError, CallEvent, CallRef, EndReason, Endpoint, Event, IncomingCall, Transport,
    Tsx,
};
use crate::message::{new_tag, HeaderName, Method, NameAddr, Request, Response};
use crate::sdp::{self, LocalMedia, Negotiated, NegotiationError, SessionDescription};
use crate::transaction::{ServerInvite, TsxKey};

/// Pending state of an unanswered inbound call, dropped once answered.
#[derive(Debug)]
pub(super) struct Ringing {
    pub invite: Request,
    pub offer: Option<SessionDescription>,
}

impl Endpoint {
    pub(super) fn on_invite(
        &mut self,
        req: Request,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        // The only body we read is SDP (RFC 3261 §8.2.3: 415 with Accept otherwise).
        let content_type = req
            .headers
            .get_str(&HeaderName::ContentType)
            .unwrap_or("application/sdp");
        let is_sdp = content_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"));
        if !req.body.is_empty() && !is_sdp {
            self.respond_status(
                &req,
                415,
                &[(HeaderName::Accept, "application/sdp".to_owned())],
                source,
                transport,
                now,
            );
            return;
        }
        // Our answer carries SDP: an Accept that excludes it gets 406 (RFC 3261 §20.1, RFC 4475
        // sdp01). No Accept means application/sdp; an empty one means no body at all.
        if !accepts_sdp(&req.headers) {
            self.respond_status(&req, 406, &[], source, transport, now);
            return;
        }
        let offer = if req.body.is_empty() {
            None
        } else {
            match SessionDescription::parse(&req.body) {
                Ok(sdp) => Some(sdp),
                Err(_) => {
                    self.respond_status(&req, 400, &[], source, transport, now);
                    return;
                }
            }
        };
        let (Ok(from), Ok(to), Ok(uri), Ok(call_id), Ok(cseq)) = (
            req.headers.from_hdr(),
            req.headers.to_hdr(),
            req.uri(),
            req.headers.call_id(),
            req.headers.cseq(),
        ) else {
            return;
        };
        let remote_target = req
            .headers
            .contact()
            .map(|c| c.uri_text.to_owned())
            .unwrap_or_else(|_| from.uri_text.to_owned());
        let route_set = req
            .headers
            .name_addrs(&HeaderName::RecordRoute)
            .map(|v| {
                v.iter()
                    .map(|n| Bytes::from(format!("<{}>", n.uri_text)))
                    .collect()
            })
            .unwrap_or_default();
        let incoming = IncomingCall {
            call: CallRef(0),
            call_id: call_id.to_owned(),
            did: uri
                .user_unescaped()
                .map(|u| u.into_owned())
                .unwrap_or_default(),
            request_uri: String::from_utf8_lossy(&req.uri).into_owned(),
            from: req
                .headers
                .get_str(&HeaderName::From)
                .unwrap_or_default()
                .to_owned(),
            to: req
                .headers
                .get_str(&HeaderName::To)
                .unwrap_or_default()
                .to_owned(),
            caller: from.uri.user_unescaped().map(|u| u.into_owned()),
            source,
            transport,
            offer: offer.clone(),
            user_agent: req
                .headers
                .get_str(&HeaderName::UserAgent)
                .map(str::to_owned),
            auth: self.check_auth(&req, now),
        };
        let call = Call {
            role: Role::Uas,
            phase: Phase::Ringing,
            call_id: call_id.to_owned(),
            local_tag: new_tag(),
            remote_tag: from.tag().map(str::to_owned),
            local_uri: without_tag(&to),
            remote_uri: without_tag(&from),
            remote_target,
            route_set,
            local_cseq: 0,
            remote_cseq: cseq.seq,
            peer: source,
            transport,
            invite_tsx: None,
            invite_cseq: cseq.seq,
            media: None,
            sdp_session: fastrand::u64(1..1 << 62),
            sdp_version: 1,
            reinvite_pending: false,
            established_at: None,
            outbound: None,
            ringing: None,
        };
        let handle = self.new_call_ref();
        let Some(key) = TsxKey::server(&req.method, &req.headers) else {
            return;
        };
        let tsx = ServerInvite::new(
            &req,
            super::reliability(transport),
            self.config.timers,
            self.config.answer_timeout,
            now,
        );
        let id = self.insert_tsx(
            Tsx::ServerInvite(tsx),
            key,
            source,
            transport,
            Some(handle),
            now,
        );
        let mut call = call;
        call.invite_tsx = Some(id);
        call.ringing = Some(Box::new(Ringing { invite: req, offer }));
        self.calls.insert(handle, call);

        self.events
            .push_back(Event::Incoming(Box::new(IncomingCall {
                call: handle,
                ..incoming
            })));
    }

    fn check_auth(&self, req: &Request, now: Instant) -> AuthStatus {
        let (Some(auth), Some(header)) = (
            &self.config.auth,
            req.headers.get_str(&HeaderName::Authorization),
        ) else {
            return AuthStatus::None;
        };
        let lookup = |u: &str| {
            auth.users
                .iter()
                .find(|(n, _)| n == u)
                .map(|(_, p)| p.clone())
        };
        match auth
            .digest
            .verify(header, "INVITE", self.unix_now(now), lookup)
        {
            crate::auth::Verdict::Authenticated { username } => AuthStatus::Authenticated(username),
            crate::auth::Verdict::Stale => AuthStatus::Stale,
            crate::auth::Verdict::Rejected => AuthStatus::Rejected,
        }
    }

    /// Answers an inbound call with 200 and an SDP answer built from `media`. With no common
    /// codec the call is rejected with 488 and the error returned.
    pub fn answer(
        &mut self,
        call: CallRef,
        media: LocalMedia,
        now: Instant,
    ) -> Result<Negotiated, CallError> {
        let c = self
            .calls
            .get_mut(&call)
            .filter(|c| c.phase == Phase::Ringing)
            .ok_or(CallError::NoSuchCall)?;
        let ringing = c.ringing.take().ok_or(CallError::NoSuchCall)?;
        let Some(offer) = &ringing.offer else {
            c.ringing = Some(ringing);
            self.finish_ringing(call, 488, None, &[], now);
            return Err(CallError::BadOffer);
        };
        let (answer, negotiated) = match sdp::answer(offer, &media, c.sdp_session, c.sdp_version) {
            Ok(r) => r,
            Err(e) => {
                c.ringing = Some(ringing);
                self.finish_ringing(call, 488, None, &[], now);
                return Err(match e {
                    NegotiationError::NoCommonCodec => CallError::NoCommonCodec,
                    _ => CallError::BadOffer,
                });
            }
        };
        let mut resp = Response::for_request(&ringing.invite, 200, Some(&c.local_tag));
        for rr in ringing.invite.headers.get_all(&HeaderName::RecordRoute) {
            resp.headers.push(HeaderName::RecordRoute, rr.clone());
        }
        resp.headers.push(HeaderName::Contact, self.contact.clone());
        resp.headers.push(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        resp.body = Bytes::from(answer.to_string());
        c.phase = Phase::Answered;
        c.media = Some(media);
        let key = (c.call_id.as_str().into(), c.local_tag.as_str().into());
        let tsx = c.invite_tsx;
        self.dialogs.insert(key, call);
        if let Some(id) = tsx {
            if let Some(Tsx::ServerInvite(t)) = self.txs.get_mut(&id).map(|e| &mut e.tsx) {
                t.respond(&resp, now);
            }
            self.pump(id, now);
        }
        Ok(negotiated)
    }

    /// Sends 180 Ringing for an unanswered inbound call.
    pub fn ring(&mut self, call: CallRef, now: Instant) -> Result<(), CallError> {
        let c = self
            .calls
            .get(&call)
            .filter(|c| c.phase == Phase::Ringing)
            .ok_or(CallError::NoSuchCall)?;
        let (Some(ringing), Some(id)) = (&c.ringing, c.invite_tsx) else {
            return Err(CallError::NoSuchCall);
        };
        let resp = Response::for_request(&ringing.invite, 180, Some(&c.local_tag));
        if let Some(Tsx::ServerInvite(t)) = self.txs.get_mut(&id).map(|e| &mut e.tsx) {
            t.respond(&resp, now);
        }
        self.pump(id, now);
        Ok(())
    }

    /// Rejects an unanswered inbound call with a 3xx–6xx status, optional reason phrase and
    /// extra headers (e.g. `Retry-After` with 503).
    pub fn reject(
        &mut self,
        call: CallRef,
        status: u16,
        reason: Option<&str>,
        headers: &[(HeaderName, String)],
        now: Instant,
    ) -> Result<(), CallError> {
        if !(300..=699).contains(&status) {
            return Err(CallError::BadStatus);
        }
        if !self
            .calls
            .get(&call)
            .is_some_and(|c| c.phase == Phase::Ringing)
        {
            return Err(CallError::NoSuchCall);
        }
        self.finish_ringing(call, status, reason, headers, now);
        Ok(())
    }

    /// Answers an unanswered inbound call with 401 and a digest challenge; the caller's retry
    /// arrives as a new [`IncomingCall`] with its [`AuthStatus`].
    pub fn challenge(&mut self, call: CallRef, stale: bool, now: Instant) -> Result<(), CallError> {
        let auth = self.config.auth.as_ref().ok_or(CallError::NoAuth)?;
        let value = auth.digest.challenge(self.unix_now(now), stale);
        self.reject(
            call,
            401,
            None,
            &[(HeaderName::WwwAuthenticate, value)],
            now,
        )
    }

    pub(super) fn finish_ringing(
        &mut self,
        call: CallRef,
        status: u16,
        reason: Option<&str>,
        headers: &[(HeaderName, String)],
        now: Instant,
    ) {
        let Some(c) = self.remove_call(call) else {
            return;
        };
        let (Some(ringing), Some(id)) = (c.ringing, c.invite_tsx) else {
            return;
        };
        let mut resp = Response::for_request(&ringing.invite, status, Some(&c.local_tag));
        if let Some(r) = reason {
            resp.reason = Bytes::copy_from_slice(r.as_bytes());
        }
        for (name, value) in headers {
            resp.headers.push(name.clone(), value.clone());
        }
        if let Some(Tsx::ServerInvite(t)) = self.txs.get_mut(&id).map(|e| &mut e.tsx) {
            t.respond(&resp, now);
        }
        self.pump(id, now);
    }

    pub(super) fn on_acked(&mut self, call: CallRef, now: Instant) {
        if let Some(c) = self.calls.get_mut(&call) {
            if c.phase == Phase::Answered {
                c.phase = Phase::Established;
                c.established_at = Some(now);
                self.emit(call, CallEvent::Confirmed);
            }
        }
    }

    /// A server INVITE transaction timed out: no ACK for our 2xx within 64*T1 (the dialog is
    /// ended with BYE, RFC 3261 §13.3.1.4), or the application never answered (480).
    pub(super) fn on_server_invite_timeout(&mut self, call: CallRef, tsx: u64, now: Instant) {
        let phase = self
            .calls
            .get(&call)
            .filter(|c| c.invite_tsx == Some(tsx))
            .map(|c| c.phase);
        match phase {
            Some(Phase::Answered) => {
                self.send_bye(call, now);
                self.emit(
                    call,
                    CallEvent::Ended {
                        reason: EndReason::AckTimeout,
                    },
                );
            }
            Some(Phase::Ringing) => {
                self.finish_ringing(call, 480, None, &[], now);
                self.emit(
                    call,
                    CallEvent::Ended {
                        reason: EndReason::Unanswered,
                    },
                );
            }
            _ => {}
        }
    }

    pub(super) fn on_reinvite(
        &mut self,
        call: CallRef,
        req: Request,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let offer = SessionDescription::parse(&req.body).ok();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let result = match (&offer, &c.media) {
            (Some(o), Some(m)) => sdp::answer(o, m, c.sdp_session, c.sdp_version + 1).ok(),
            _ => None,
        };
        let Some((answer, negotiated)) = result else {
            self.respond_status(&req, 488, &[], source, transport, now);
            return;
        };
        c.sdp_version += 1;
        c.invite_cseq = req.headers.cseq().map(|s| s.seq).unwrap_or(0);
        if let Ok(contact) = req.headers.contact() {
            c.remote_target = contact.uri_text.to_owned();
        }
        let mut resp = Response::for_request(&req, 200, None);
        resp.headers.push(HeaderName::Contact, self.contact.clone());
        resp.headers.push(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        resp.body = Bytes::from(answer.to_string());
        if let Some(id) = self.respond_new(&req, &resp, source, transport, Some(call), now) {
            if let Some(c) = self.calls.get_mut(&call) {
                c.invite_tsx = Some(id);
            }
        }
        self.emit(call, CallEvent::MediaUpdated { negotiated });
    }

    /// Ends a call from our side: BYE when established (or answered), CANCEL while an
    /// outbound call is ringing, 480 for an inbound call not yet answered.
    pub fn hangup(&mut self, call: CallRef, now: Instant) -> Result<(), CallError> {
        let c = self.calls.get_mut(&call).ok_or(CallError::NoSuchCall)?;
        match (c.role, c.phase) {
            (Role::Uas, Phase::Ringing) => self.finish_ringing(call, 480, None, &[], now),
            (Role::Uac, Phase::Calling) => self.cancel_outbound(call, now),
            _ => {
                self.send_bye(call, now);
                self.emit(
                    call,
                    CallEvent::Ended {
                        reason: EndReason::LocalBye,
                    },
                );
            }
        }
        Ok(())
    }

    pub(super) fn send_bye(&mut self, call: CallRef, now: Instant) {
        let Some(mut c) = self.remove_call(call) else {
            return;
        };
        let bye = c.request(Method::Bye, &self.via_host, &self.contact);
        self.send_non_invite(&bye, c.peer, c.transport, now);
    }
}

/// A From/To value without its tag, to reuse in in-dialog requests.
fn without_tag(n: &NameAddr<'_>) -> String {
    let mut s = match &n.display {
        Some(d) => format!(
            "\"{}\" <{}>",
            d.replace('\\', "\\\\").replace('"', "\\\""),
            n.uri_text
        ),
        None => format!("<{}>", n.uri_text),
    };
    for p in n.params().filter(|p| !p.name.eq_ignore_ascii_case("tag")) {
        s.push(';');
        s.push_str(p.name);
        if let Some(v) = p.value {
            s.push('=');
            s.push_str(v);
        }
    }
    s
}

/// Whether the request's Accept header fields (if any) admit an `application/sdp` body.
fn accepts_sdp(headers: &crate::message::Headers) -> bool {
    let mut present = false;
    for value in headers.get_all(&HeaderName::Accept) {
        present = true;
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        let admits = value.split(',').any(|range| {
            let media = range.split(';').next().unwrap_or_default().trim();
            ["application/sdp", "application/*", "*/*"]
                .iter()
                .any(|ok| media.eq_ignore_ascii_case(ok))
        });
        if admits {
            return true;
        }
    }
    !present
}
