//! A UAS for load tests: answers every INVITE with 200 + SDP (PCMU), then waits for ACK and
//! BYE. Run: `cargo run --release -p voxbridge-sip --example uas_bench -- 127.0.0.1:5080`
//! (rate limiting is off; prints endpoint counters every 5 s to stderr).

use std::net::SocketAddr;
use std::time::Duration;

use voxbridge_sip::driver::{start, DriverConfig};
use voxbridge_sip::endpoint::Event;
use voxbridge_sip::sdp::{Codec, Direction, LocalMedia};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let listen: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5080".into())
        .parse()
        .map_err(std::io::Error::other)?;
    let mut config = DriverConfig::new(listen);
    config.endpoint.rate_limit = None;
    config.event_capacity = 65_536;
    let (sip, mut events) = start(config).await?;
    eprintln!("uas_bench listening on {}", sip.local_addr());
    let media = LocalMedia {
        addr: listen.ip(),
        port: 20000,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        telephone_event: true,
        ptime: 20,
        direction: Direction::SendRecv,
    };
    let stats_handle = sip.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            match stats_handle.stats().await {
                Ok(s) => eprintln!("{s:?}"),
                Err(_) => return,
            }
        }
    });
    while let Some(event) = events.recv().await {
        if let Event::Incoming(call) = event {
            let (sip, media) = (sip.clone(), media.clone());
            tokio::spawn(async move {
                let _ = sip.answer(call.call, media).await;
            });
        }
    }
    Ok(())
}
