//! RTP/RTCP: packet codecs, per-source statistics and the sans-IO session.

mod packet;
pub mod rtcp;
mod session;
mod source;

pub use packet::{is_rtcp, RtpError, RtpHeader, RtpPacket, RTP_HEADER_LEN};
pub use session::{
    Component, Datagram, Input, Output, Received, Rejected, RemoteReport, RtpSession, SendError,
    SessionConfig, SessionEvent, SourcePolicy, Transmit,
};
pub use source::{SeqVerdict, SourceStats};
