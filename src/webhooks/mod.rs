//! Webhook delivery from the store's outbox: Standard Webhooks signatures, at-least-once,
//! retried with capped exponential backoff under the same `webhook-id`.

pub mod signing;
pub mod target;
mod worker;

pub use worker::DeliveryWorker;
