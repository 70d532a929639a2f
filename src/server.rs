//! Starts and stops everything `voxbridge serve` runs: store, provisioning, HTTP API, webhook
//! outbox worker and (with telephony enabled) the dispatcher.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{self, AppState};
use crate::clock::Clock;
use crate::config::Config;
use crate::dispatcher::{Dialer, Dispatcher};
use crate::inbound::InboundRouter;
use crate::limits::CallLimits;
use crate::phone::PhoneNormalizer;
use crate::store::{Store, StoreError};
use crate::webhooks::DeliveryWorker;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the webhook client: {0}")]
    Webhooks(#[from] reqwest::Error),
    #[error("telephony.default_region: {0}")]
    Region(#[from] crate::phone::PhoneError),
    #[error("telephony.enabled = true, but no outbound trunk is configured to place calls")]
    NoDialer,
    #[error(transparent)]
    Telephony(#[from] crate::telephony::TelephonyError),
}

pub struct Server {
    pub http_addr: SocketAddr,
    /// Where the SIP endpoint listens (UDP and TCP).
    pub sip_addr: SocketAddr,
    pub store: Store,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// With `[telephony] enabled = true` outbound calls are placed through the outbound trunk,
    /// or by `dialer` when one is given (tests replace telephony at this seam). Every time the
    /// server records or schedules by comes from `clock` (tests pass a manual one).
    pub async fn start(
        config: Config,
        dialer: Option<Arc<dyn Dialer>>,
        clock: Clock,
    ) -> Result<Self, ServerError> {
        let store =
            Store::connect(&config.database.url, config.database.max_connections, clock).await?;
        store.migrate().await?;
        let org_ids = crate::provision::provision(&store, &config).await?;
        let limits = call_limits(&config, &org_ids);

        let (shutdown, stop) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let worker = DeliveryWorker::new(store.clone(), config.webhooks.clone())?;
        tasks.spawn(worker.run(stop.clone()));
        let phones = PhoneNormalizer::new(&config.telephony.default_region)?;
        let router = InboundRouter::new(store.clone(), config.trunks.clone(), phones);
        let telephony = crate::telephony::start(
            &config,
            router,
            store.clone(),
            limits.clone(),
            stop.clone(),
            &mut tasks,
        )
        .await?;
        let sip_addr = telephony.sip.local_addr();
        if config.telephony.enabled {
            let dialer = dialer.or(telephony.dialer).ok_or(ServerError::NoDialer)?;
            let node = format!(
                "{}-{}",
                std::process::id(),
                &uuid::Uuid::now_v7().simple().to_string()[24..]
            );
            let dispatcher = Dispatcher::new(
                store.clone(),
                dialer,
                config.telephony.clone(),
                config.billing.rounding,
                node,
                limits,
                outbound_rate(&config),
            );
            tasks.spawn(dispatcher.run(stop.clone()));
        }

        let state = AppState {
            store: store.clone(),
            phones,
            allow_private_webhooks: config.webhooks.allow_private_targets,
            telephony_enabled: config.telephony.enabled,
            capacity: telephony.capacity.clone(),
            rounding: config.billing.rounding,
            metrics: crate::metrics::install(),
            caches: Default::default(),
            tts: crate::agents::tts::Tts::new(&config.voices, config.tts.as_ref()),
        };
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.http.listen,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.http.listen,
            source,
        })?;
        let mut stop_http = stop.clone();
        tasks.spawn(async move {
            let app = api::router(state);
            let graceful = async move {
                let _ = stop_http.wait_for(|stop| *stop).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        tracing::info!(%http_addr, %sip_addr, telephony = config.telephony.enabled, "voxbridge is serving");
        Ok(Self {
            http_addr,
            sip_addr,
            store,
            shutdown,
            tasks,
        })
    }

    /// Stops accepting work, lets in-flight requests, deliveries and attempts finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.store.close().await;
    }
}

/// The caps on calls at once: the node's, each trunk's and each org's (by the id provisioning
/// gave it).
fn call_limits(config: &Config, org_ids: &[uuid::Uuid]) -> CallLimits {
    let trunks = config
        .trunks
        .iter()
        .filter_map(|t| Some((t.name.clone(), t.max_concurrent?)))
        .collect();
    let orgs = config
        .orgs
        .iter()
        .zip(org_ids)
        .filter_map(|(org, id)| Some((*id, org.max_concurrent_calls?)))
        .collect();
    CallLimits::new(config.telephony.max_concurrent_calls, trunks, orgs)
}

/// The trunk outbound calls go through, and the lower of the node's and its own INVITE rate.
fn outbound_rate(config: &Config) -> (String, u32) {
    let name = config.telephony.outbound_trunk.clone().unwrap_or_default();
    let trunk_rate = config
        .trunks
        .iter()
        .find(|t| t.name == name)
        .and_then(|t| t.calls_per_second);
    let rate = config.telephony.calls_per_second;
    (name, trunk_rate.map_or(rate, |r| r.min(rate)))
}
