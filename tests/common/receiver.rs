//! A webhook receiver on loopback that records every request and answers as told, and an
//! independent Standard Webhooks signature check (its own HMAC, not the server's code).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("webhook body is JSON")
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    /// Accept the request and never answer.
    Hang,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
}

struct Inner {
    received: Mutex<Vec<Received>>,
    /// Answers for the next requests in order; after they run out, `default`.
    script: Mutex<Vec<Answer>>,
    default: Mutex<Answer>,
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("addr")).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let inner = Arc::new(Inner {
            received: Mutex::new(Vec::new()),
            script: Mutex::new(Vec::new()),
            default: Mutex::new(Answer::Status(200)),
        });
        let app = Router::new()
            .route("/hook", post(record))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner }
    }

    pub fn script(&self, answers: &[Answer]) {
        *self.inner.script.lock().unwrap() = answers.iter().rev().copied().collect();
    }

    pub fn answer_by_default(&self, answer: Answer) {
        *self.inner.default.lock().unwrap() = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.inner.received.lock().unwrap().len()
    }

    /// The requests whose answer was a 2xx (what a receiver would have processed).
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        super::eventually(secs, &format!("{n} webhooks"), || async {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

async fn record(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    inner.received.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let next = inner.script.lock().unwrap().pop();
    let answer = next.unwrap_or(*inner.default.lock().unwrap());
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        Answer::Hang => std::future::pending().await,
    }
}

/// Verifies a delivery per the Standard Webhooks spec with an HMAC computed here.
pub fn signature_is_valid(secret: &str, r: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secret is base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    r.signature.split(' ').any(|s| s == expected)
}
