//! `voxbridge serve` as a process of its own, for tests that kill it (-9) and start it again.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A child process, killed (SIGKILL) when dropped so no test leaves one behind.
pub struct Process(pub Child);

impl Process {
    /// kill -9, and wait until it is gone.
    pub fn kill_9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// `voxbridge serve --config config`, its warnings on the test's stderr.
pub fn spawn_server(config: &Path) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_voxbridge"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start voxbridge"),
    )
}

/// A TCP port on loopback that was free a moment ago (for a server's HTTP listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits (up to 30 s) until the server at `base` answers `/healthz`.
pub async fn wait_healthy(http: &reqwest::Client, base: &str) {
    super::eventually(30, "the server to answer /healthz", || async {
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 200)
            .map(|_| ())
    })
    .await
}
