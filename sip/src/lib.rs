//! Sans-IO SIP for VoxBridge: messages, transactions (RFC 3261 §17), dialogs, SDP offer/answer,
//! digest auth, and a thin tokio transport driver.

pub mod auth;
pub mod driver;
pub mod endpoint;
pub mod message;
pub mod sdp;
pub mod transaction;
