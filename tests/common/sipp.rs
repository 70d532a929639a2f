//! Runs SIPp (Debian's sip-tester) as a separate process for one scenario.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

/// A media port base of its own for each SIPp run (`-mp`; its RTP streams use the ports from
/// there), so calls of tests running in parallel never share one.
pub fn media_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(42_000);
    NEXT.fetch_add(16, std::sync::atomic::Ordering::Relaxed)
}

/// Runs `scenario` (SIPp XML) for one call against `server` with `args` added (local address,
/// service, media options); true if SIPp says the call passed. On failure SIPp's error log is
/// printed, so a failing test shows the message that broke it.
pub fn run(server: SocketAddr, scenario: &str, args: &[&str]) -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("scenario.xml");
    std::fs::write(&path, scenario).expect("write scenario");
    let errors = dir.path().join("errors.log");
    let status = Command::new("sipp")
        .arg(server.to_string())
        .arg("-sf")
        .arg(&path)
        .args(["-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error"])
        .args(["-recv_timeout", "10s", "-trace_err"])
        .args(args)
        .arg("-error_file")
        .arg(&errors)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .status()
        .expect("run sipp (apt-get install sip-tester)");
    if !status.success() {
        eprintln!("{}", std::fs::read_to_string(&errors).unwrap_or_default());
    }
    status.success()
}
