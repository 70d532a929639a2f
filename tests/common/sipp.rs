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

/// One INVITE dialog a tracing carrier received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Invite {
    /// The VoxBridge call (`X-VoxBridge-Call-Id`).
    pub call: String,
    pub sip_call_id: String,
    /// Who sent it: the top Via's host:port (one per node).
    pub sender: String,
}

/// The INVITEs in a carrier's trace, once per SIP dialog (retransmissions and re-sent INVITEs
/// count once).
pub fn invites(trace: &std::path::Path) -> Vec<Invite> {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    let mut headers: Option<[Option<String>; 3]> = None;
    for line in text.lines() {
        if line.starts_with("INVITE ") {
            headers = Some([None, None, None]);
            continue;
        }
        let Some(fields) = headers.as_mut() else {
            continue;
        };
        let Some((name, value)) = line.split_once(':') else {
            // The blank line after the headers, or the next message's banner.
            headers = None;
            continue;
        };
        let value = value.trim().to_owned();
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            "x-voxbridge-call-id" => 0,
            "call-id" => 1,
            "via" => 2,
            _ => continue,
        };
        fields[slot].get_or_insert(value);
        if let [Some(call), Some(sip_call_id), Some(via)] = fields.clone() {
            let sender = via.split_whitespace().nth(1).unwrap_or_default();
            let sender = sender.split(';').next().unwrap_or_default().to_owned();
            if seen.insert(sip_call_id.clone()) {
                found.push(Invite {
                    call,
                    sip_call_id,
                    sender,
                });
            }
            headers = None;
        }
    }
    found
}

/// [`invites`] counted per VoxBridge call.
pub fn invites_per_call(trace: &std::path::Path) -> std::collections::HashMap<String, usize> {
    let mut per_call = std::collections::HashMap::new();
    for invite in invites(trace) {
        *per_call.entry(invite.call).or_default() += 1;
    }
    per_call
}
