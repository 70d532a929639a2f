//! Persistence on SQLite (embedded default) or PostgreSQL (shared by many nodes), one query
//! text for both through sqlx's `Any` driver. Every call state change and the event announcing
//! it are written in one transaction (outbox pattern).

mod agents;
mod batch;
mod calls;
mod dispatch;
mod events;
mod orgs;
mod rows;

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use tokio::sync::Notify;

use crate::clock::Clock;

pub use calls::{
    started_seconds, CallFilter, CancelOutcome, CreateOutcome, IdempotencyRecord, Transition,
};
pub use events::{AttemptRecord, DeliveryResult, OutboxEvent};
pub use orgs::ProvisionOrg;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored {what} is unreadable: {value:?}")]
    Corrupt { what: &'static str, value: String },
    #[error("{0} already exists")]
    Conflict(String),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Row-locking suffix for claim queries: PostgreSQL nodes skip rows another node holds;
    /// SQLite has a single writer, so there is nothing to skip.
    fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    read: AnyPool,
    /// SQLite allows one writer at a time; funnelling writes through one connection avoids
    /// SQLITE_BUSY storms. On PostgreSQL this is the same pool as `read`.
    write: AnyPool,
    dialect: Dialect,
    /// Every time the store writes comes from here (see [`Clock`]).
    clock: Clock,
    signals: Arc<Signals>,
    /// The group-commit writer for newly queued calls.
    batcher: tokio::sync::mpsc::Sender<batch::Pending>,
}

/// Wake-ups for the workers that read what the store writes.
#[derive(Default)]
struct Signals {
    /// Woken whenever an event with a webhook target is committed.
    outbox: Notify,
    /// Woken whenever a call becomes due for dialling.
    dispatch: Notify,
    /// Woken (all waiters) whenever a call is canceled on this node.
    canceled: Notify,
}

impl Store {
    pub async fn connect(url: &str, max_connections: u32, clock: Clock) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        };
        let (read, write) = match dialect {
            Dialect::Sqlite => {
                let url = sqlite_url(url)?;
                let opts: AnyConnectOptions = url.parse()?;
                let write = sqlite_pool(1).connect_with(opts.clone()).await?;
                let read = sqlite_pool(max_connections).connect_with(opts).await?;
                (read, write)
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?;
                (pool.clone(), pool)
            }
        };
        let signals = Arc::new(Signals::default());
        let batcher = batch::spawn_writer(write.clone(), signals.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                read,
                write,
                dialect,
                clock,
                signals,
                batcher,
            }),
        })
    }

    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.inner.write).await?;
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// The clock this store (and everything that schedules through it) reads.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub async fn ping(&self) -> Result<()> {
        self.inner.read.execute("SELECT 1").await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.inner.read.close().await;
        self.inner.write.close().await;
    }

    /// Resolves when new webhook events may be waiting (or a permit was left by an earlier wake).
    pub async fn outbox_changed(&self) {
        self.inner.signals.outbox.notified().await
    }

    pub async fn dispatch_changed(&self) {
        self.inner.signals.dispatch.notified().await
    }

    /// Resolves when a call is canceled through this node (a dispatcher then checks whether
    /// it is one of its own).
    pub async fn call_canceled(&self) {
        self.inner.signals.canceled.notified().await
    }

    fn read(&self) -> &AnyPool {
        &self.inner.read
    }

    fn write(&self) -> &AnyPool {
        &self.inner.write
    }

    fn notify_outbox(&self) {
        self.inner.signals.outbox.notify_one();
    }

    fn notify_dispatch(&self) {
        self.inner.signals.dispatch.notify_one();
    }
}

fn sqlite_pool(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new().max_connections(max).after_connect(|conn, _| {
        Box::pin(async move {
            // WAL lets readers run beside the writer; NORMAL sync is durable across process
            // crashes (the WAL is fsynced at checkpoints), which is what kill -9 needs.
            conn.execute(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
                 PRAGMA foreign_keys = ON;",
            )
            .await?;
            Ok(())
        })
    })
}

/// Makes a `sqlite://path` URL create its file (and directory) on first use.
fn sqlite_url(url: &str) -> Result<String> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if let Some(dir) = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let mode = if query.contains("mode=") {
        String::new()
    } else {
        "mode=rwc".to_owned()
    };
    let query = [query, &mode]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("&");
    Ok(format!("sqlite://{path}?{query}"))
}

#[cfg(test)]
mod tests {
    use super::sqlite_url;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.db");
        let url = sqlite_url(&format!("sqlite://{}", path.display())).unwrap();
        assert_eq!(url, format!("sqlite://{}?mode=rwc", path.display()));
        assert!(path.parent().unwrap().is_dir());
        assert_eq!(
            sqlite_url("sqlite://x.db?mode=ro").unwrap(),
            "sqlite://x.db?mode=ro"
        );
    }
}
