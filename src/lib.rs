//! VoxBridge: a self-hosted SIP/RTP media server with an embedded control API.

pub mod agents;
pub mod api;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod dispatcher;
pub mod domain;
pub mod inbound;
pub mod limits;
pub mod metrics;
pub mod outcome;
pub mod phone;
pub mod provision;
pub mod server;
pub mod store;
pub mod telephony;
pub mod webhooks;
