//! Header field names: the ones the stack reads are an enum (so lookups compare a byte, not a
//! string), everything else keeps its original spelling so proxies/endpoints forward it unchanged.

use bytes::Bytes;

macro_rules! header_names {
    ($( $variant:ident => $canonical:literal $(, $compact:literal)? ;)*) => {
        /// A SIP header field name. Compare with `==`; unknown names compare case-insensitively.
        #[derive(Debug, Clone)]
        pub enum HeaderName {
            $( $variant, )*
            /// An extension header, spelled as received.
            Other(Bytes),
        }

        impl HeaderName {
            /// Canonical long form, or the received spelling for extension headers.
            pub fn as_bytes(&self) -> &[u8] {
                match self {
                    $( HeaderName::$variant => $canonical.as_bytes(), )*
                    HeaderName::Other(b) => b,
                }
            }

            /// Resolves a received name (long or compact form, any case).
            pub fn from_wire(name: &[u8]) -> HeaderName {
                $( if name.eq_ignore_ascii_case($canonical.as_bytes()) { return HeaderName::$variant; } )*
                if name.len() == 1 {
                    let c = name[0].to_ascii_lowercase();
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                }
                HeaderName::Other(Bytes::copy_from_slice(name))
            }
        }
    };
}

header_names! {
    Via => "Via", b'v';
    From => "From", b'f';
    To => "To", b't';
    CallId => "Call-ID", b'i';
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    Contact => "Contact", b'm';
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    Route => "Route";
    RecordRoute => "Record-Route";
    Require => "Require";
    Supported => "Supported", b'k';
    Unsupported => "Unsupported";
    Allow => "Allow";
    Accept => "Accept";
    UserAgent => "User-Agent";
    Server => "Server";
    Expires => "Expires";
    RetryAfter => "Retry-After";
    WwwAuthenticate => "WWW-Authenticate";
    Authorization => "Authorization";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    Subject => "Subject", b's';
    Reason => "Reason";
    ContentEncoding => "Content-Encoding", b'e';
    Event => "Event", b'o';
    ReferTo => "Refer-To", b'r';
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl Eq for HeaderName {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_forms_resolve() {
        assert_eq!(HeaderName::from_wire(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_wire(b"I"), HeaderName::CallId);
        assert_eq!(
            HeaderName::from_wire(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_wire(b"l"), HeaderName::ContentLength);
    }

    #[test]
    fn extension_names_keep_spelling_and_compare_caselessly() {
        let n = HeaderName::from_wire(b"NewFangledHeader");
        assert_eq!(n.as_bytes(), b"NewFangledHeader");
        assert_eq!(n, HeaderName::from_wire(b"newfangledheader"));
        assert_ne!(n, HeaderName::Via);
    }
}
