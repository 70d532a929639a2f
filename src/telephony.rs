//! SIP glue for `voxbridge serve`: runs the SIP endpoint on `[sip] listen` (UDP and TCP;
//! the driver answers OPTIONS itself) and routes every inbound INVITE through the store.
//! Until media and agents are wired to SIP, an INVITE that routes to an agent is answered 480.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use voxbridge_sip::driver::{self, DriverConfig, SipHandle};
use voxbridge_sip::endpoint::{Event, IncomingCall, RateLimit};
use voxbridge_sip::message::HeaderName;

use crate::config::Config;
use crate::inbound::{InboundRouter, Refusal};

/// Binds the SIP endpoint and starts answering. Returns the handle (for outbound calls and
/// the bound address); the endpoint stops when the runtime does.
pub async fn start(config: &Config, router: InboundRouter) -> std::io::Result<SipHandle> {
    let mut driver_config = DriverConfig::new(config.sip.listen);
    driver_config.advertised = config
        .sip
        .public_addr
        .map(|ip| SocketAddr::new(ip, config.sip.listen.port()));
    // A trunk carries many calls from one address; only unknown sources are rate limited.
    driver_config.endpoint.rate_limit = Some(RateLimit {
        per_second: config.sip.rate_limit_per_second,
        burst: config.sip.rate_limit_burst,
        ban: Duration::from_secs(config.sip.ban_seconds),
        exempt: config
            .trunks
            .iter()
            .flat_map(|t| &t.inbound_cidrs)
            .map(|net| (net.network(), net.prefix_len()))
            .collect(),
    });
    let (handle, events) = driver::start(driver_config).await?;
    tokio::spawn(route_incoming(
        handle.clone(),
        events,
        std::sync::Arc::new(router),
    ));
    Ok(handle)
}

async fn route_incoming(
    handle: SipHandle,
    mut events: mpsc::Receiver<Event>,
    router: std::sync::Arc<InboundRouter>,
) {
    while let Some(event) = events.recv().await {
        match event {
            Event::Incoming(call) => {
                // Routing reads the store; the event loop must keep draining meanwhile.
                let (handle, router) = (handle.clone(), router.clone());
                tokio::spawn(async move { answer_incoming(&handle, &router, *call).await });
            }
            // No call is answered yet, so call events are only the ends of refused ones.
            Event::Call(call, event) => tracing::debug!(call = call.0, ?event, "call event"),
        }
    }
}

async fn answer_incoming(handle: &SipHandle, router: &InboundRouter, call: IncomingCall) {
    let refusal = match router.route(call.source.ip(), &call.did).await {
        Ok(route) => {
            tracing::info!(call_id = %call.call_id, did = %route.did, org = %route.org.slug, agent = %route.agent.slug,
                "inbound call routed; media is not wired yet");
            Refusal::NotYetAnswerable
        }
        Err(refusal) => refusal,
    };
    let (status, reason, retry_after) = refusal.sip_response();
    metrics::counter!("voxbridge_sip_inbound_total", "status" => status.to_string()).increment(1);
    tracing::info!(call_id = %call.call_id, did = %call.did, source = %call.source, status, reason, "inbound INVITE refused");
    let headers = retry_after
        .map(|s| vec![(HeaderName::RetryAfter, s.to_string())])
        .unwrap_or_default();
    if let Err(e) = handle
        .reject(call.call, status, Some(reason.to_owned()), headers)
        .await
    {
        tracing::debug!(error = %e, call_id = %call.call_id, "reject failed (the caller may have cancelled)");
    }
}
