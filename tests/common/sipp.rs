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
    sipp(Some(server), scenario, 1, args)
}

/// Runs `scenario` as a UAS (a carrier) on 127.0.0.1:`port` until it has handled `calls`
/// calls; true if every one passed.
pub fn serve(port: u16, scenario: &str, calls: u32, args: &[&str]) -> bool {
    let port = port.to_string();
    let local = [&["-i", "127.0.0.1", "-p", &port][..], args].concat();
    sipp(None, scenario, calls, &local)
}

fn sipp(server: Option<SocketAddr>, scenario: &str, calls: u32, args: &[&str]) -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("scenario.xml");
    std::fs::write(&path, scenario).expect("write scenario");
    let errors = dir.path().join("errors.log");
    let status = Command::new("sipp")
        .args(server.map(|s| s.to_string()))
        .arg("-sf")
        .arg(&path)
        .args(["-m", &calls.to_string(), "-nostdin", "-timeout", "60s"])
        .args(["-timeout_error", "-recv_timeout", "10s", "-trace_err"])
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
