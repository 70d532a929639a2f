//! Transaction matching (RFC 3261 §17.1.3 and §17.2.3): branch + sent-by + method, where an
//! ACK for a failure matches its INVITE. Requests without an RFC 3261 branch (RFC 2543
//! peers, RFC 4475 inv2543) get a key from Call-ID, CSeq number, From tag and top Via instead.

use crate::message::{Headers, Method, Via};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TsxKey {
    id: Box<str>,
    method: Method,
}

impl TsxKey {
    /// Key of a received request (server side).
    pub fn server(method: &Method, headers: &Headers) -> Option<TsxKey> {
        let via = headers.via_top().ok()?;
        let method = if *method == Method::Ack {
            Method::Invite
        } else {
            method.clone()
        };
        let id = match via.rfc3261_branch() {
            Some(branch) => format!("{branch}|{}", sent_by(&via)),
            None => {
                let seq = headers.cseq().ok()?.seq;
                let tag = headers
                    .from_hdr()
                    .ok()
                    .and_then(|f| f.tag().map(str::to_owned))
                    .unwrap_or_default();
                format!(
                    "2543|{}|{seq}|{tag}|{}",
                    headers.call_id().ok()?,
                    sent_by(&via)
                )
            }
        };
        Some(TsxKey {
            id: id.into(),
            method,
        })
    }

    /// Key of a received response or of a request we send (client side): branch + CSeq method.
    pub fn client(headers: &Headers) -> Option<TsxKey> {
        let via = headers.via_top().ok()?;
        let method = headers.cseq().ok()?.method;
        let method = if method == Method::Ack {
            Method::Invite
        } else {
            method
        };
        Some(TsxKey {
            id: via.branch()?.into(),
            method,
        })
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The key of the INVITE a CANCEL with this key refers to (same branch, §9.2).
    pub fn with_method(&self, method: Method) -> TsxKey {
        TsxKey {
            id: self.id.clone(),
            method,
        }
    }
}

fn sent_by(via: &Via<'_>) -> String {
    match via.port {
        Some(p) => format!("{}:{p}", via.host.to_ascii_lowercase()),
        None => via.host.to_ascii_lowercase(),
    }
}
