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

/// SIPp as a carrier on 127.0.0.1:`port`, taking any number of calls with `scenario` until it
/// is dropped, and writing every message to a trace in `dir` (see [`invites_per_call`]).
pub fn carrier_tracing(
    port: u16,
    scenario: &str,
    dir: &std::path::Path,
) -> (super::process::Process, std::path::PathBuf) {
    let path = dir.join("carrier.xml");
    std::fs::write(&path, scenario).expect("write scenario");
    let trace = dir.join("carrier_messages.log");
    let child = Command::new("sipp")
        .arg("-sf")
        .arg(&path)
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &media_port().to_string()])
        .args(["-nostdin", "-trace_msg", "-message_file"])
        .arg(&trace)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run sipp (apt-get install sip-tester)");
    (super::process::Process(child), trace)
}

/// The INVITEs a tracing carrier received, as distinct SIP dialogs (Call-ID) per VoxBridge call
/// (`X-VoxBridge-Call-Id`), so retransmissions and re-sent INVITEs count once.
pub fn invites_per_call(trace: &std::path::Path) -> std::collections::HashMap<String, usize> {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    let mut dialogs = std::collections::HashSet::new();
    let (mut in_invite, mut call_id, mut ours) = (false, None, None);
    for line in text.lines() {
        if line.starts_with("INVITE ") {
            (in_invite, call_id, ours) = (true, None, None);
        } else if line.starts_with("SIP/2.0 ")
            || line.starts_with("ACK ")
            || line.starts_with("BYE ")
            || line.starts_with("CANCEL ")
        {
            in_invite = false;
        } else if in_invite {
            let value = |name: &str| {
                line.split_once(':')
                    .filter(|(h, _)| h.trim().eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_owned())
            };
            call_id = call_id.or_else(|| value("Call-ID"));
            ours = ours.or_else(|| value("X-VoxBridge-Call-Id"));
            if let (Some(sip), Some(vb)) = (&call_id, &ours) {
                dialogs.insert((sip.clone(), vb.clone()));
            }
        }
    }
    let mut per_call = std::collections::HashMap::new();
    for (_, vb) in dialogs {
        *per_call.entry(vb).or_default() += 1;
    }
    per_call
}
