//! Load bench: N bidirectional G.711 calls over 127.0.0.1 through the full pipeline
//! (receive, jitter buffer, decode, 8→16 kHz, VAD, agent audio, 16→8 kHz, encode, paced send).
//!
//! `cargo bench -p voxbridge-media --bench load -- [streams] [seconds] [media threads (default: one per core)] [poll] [rt|rt-media]`
//!
//! Three parts share the machine: `media-rt` shard threads (what is measured); the `app`
//! runtime in the same process (a task per call, or one polling task: reads caller frames,
//! plays 1 s agent talk spurts every 2 s); and the simulated callers in a separate process
//! (this binary with `farend`, in its own session), one thread and one socket sending 20 ms
//! PCMU on absolute deadlines and timing what comes back with kernel receive timestamps. The
//! media side learns each caller's address by latching. CPU per stream is the media threads' CPU time over the window.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use voxbridge_media::codec::{linear_to_ulaw, CodecKind};
use voxbridge_media::pipeline::CallMediaConfig;
use voxbridge_media::quality::CallQuality;
use voxbridge_media::rtp::{RtpHeader, RtpPacket, RTP_HEADER_LEN};
use voxbridge_media::runtime::{CallEvent, MediaRuntime, MediaRuntimeConfig};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Per-thread-name CPU seconds from /proc.
fn cpu_by_thread() -> HashMap<String, f64> {
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in dir.flatten() {
        let p = task.path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(p.join("comm")),
            std::fs::read_to_string(p.join("stat")),
        ) else {
            continue;
        };
        // Fields after the parenthesised name: utime and stime are the 12th and 13th.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let name = comm
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .to_string();
        *out.entry(name).or_insert(0.0) += ticks / tck;
    }
    out
}

/// Starts the far-end process in its own session and hands it the timing and ports.
fn spawn_far_end(
    ports: &[u16],
    t_start: Instant,
    warmup: Duration,
    secs: u64,
    realtime: bool,
) -> std::process::Child {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().expect("own path");
    let mut cmd = Command::new(exe);
    cmd.arg("farend")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    // SAFETY: setsid and sched_setscheduler are async-signal-safe and touch no state of the
    // parent.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if realtime {
                let param = libc::sched_param { sched_priority: 40 };
                libc::sched_setscheduler(0, libc::SCHED_FIFO, &param);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("far-end process");
    let start_in = t_start
        .saturating_duration_since(Instant::now())
        .as_millis();
    let mut input = format!("{start_in} {} {secs}\n", warmup.as_millis());
    for p in ports {
        input.push_str(&format!("{p}\n"));
    }
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("far-end stdin");
    }
    child
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[derive(Default)]
struct FarEndResult {
    received: u64,
    /// Per stream: arrival minus media time (µs) for packets after warm-up.
    transit: Vec<Vec<i64>>,
}

/// All simulated callers share one UDP socket, as behind a carrier's media gateway: packets go
/// out in one `sendmmsg` per millisecond and come back in `recvmmsg` batches, demultiplexed by
/// the media port they came from. Arrival times are the kernel's receive timestamps
/// (`SO_TIMESTAMPNS`), taken when the media thread's `sendto` delivered the packet, so the
/// simulator's own scheduling does not enter the pacing it measures.
struct FarSocket(std::net::UdpSocket);

const BATCH: usize = 64;
const PACKET: usize = RTP_HEADER_LEN + 160;

fn sockaddr_in(addr: SocketAddr) -> libc::sockaddr_in {
    let IpAddr::V4(ip) = addr.ip() else {
        panic!("far end is IPv4 loopback only");
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A one-datagram message header over `name` and `iov`, which must outlive its use.
fn mmsghdr(name: &mut libc::sockaddr_in, iov: &mut libc::iovec) -> libc::mmsghdr {
    // SAFETY: all-zero is a valid mmsghdr; the pointers are set below.
    let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
    m.msg_hdr.msg_name = (name as *mut libc::sockaddr_in).cast();
    m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
    m.msg_hdr.msg_iov = iov;
    m.msg_hdr.msg_iovlen = 1;
    m
}

impl FarSocket {
    fn bind() -> Self {
        use std::os::fd::AsRawFd;
        let sock = std::net::UdpSocket::bind((LOCALHOST, 0)).expect("far-end socket");
        let fd = sock.as_raw_fd();
        let set = |level, name, value: libc::c_int| {
            // SAFETY: valid descriptor, option value of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    (&value as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            rc == 0
        };
        assert!(
            set(libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1),
            "SO_TIMESTAMPNS: {}",
            std::io::Error::last_os_error()
        );
        // 1,000 streams × 50 packets/s arrive on this one socket: room for a stall. Without
        // CAP_NET_ADMIN only net.core.rmem_max is granted.
        if !set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 16 << 20) {
            set(libc::SOL_SOCKET, libc::SO_RCVBUF, 16 << 20);
        }
        sock.set_nonblocking(true).expect("nonblocking");
        FarSocket(sock)
    }

    /// Sends every packet; a full socket buffer drops the rest (counted as loss by the media side).
    fn send_batch(&self, packets: &[(SocketAddr, [u8; PACKET])]) {
        use std::os::fd::AsRawFd;
        for chunk in packets.chunks(BATCH) {
            let mut addrs: Vec<libc::sockaddr_in> =
                chunk.iter().map(|(a, _)| sockaddr_in(*a)).collect();
            let mut iovs: Vec<libc::iovec> = chunk
                .iter()
                .map(|(_, p)| libc::iovec {
                    iov_base: p.as_ptr() as *mut libc::c_void,
                    iov_len: p.len(),
                })
                .collect();
            let mut msgs: Vec<libc::mmsghdr> = addrs
                .iter_mut()
                .zip(iovs.iter_mut())
                .map(|(addr, iov)| mmsghdr(addr, iov))
                .collect();
            // SAFETY: msgs points at chunk.len() headers whose buffers outlive the call.
            unsafe {
                libc::sendmmsg(self.0.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, 0);
            }
        }
    }

    /// Waits until readable or `until`, then drains: calls `got(source port, packet, kernel
    /// receive time in ns)` per datagram.
    fn receive(&self, until: Instant, mut got: impl FnMut(u16, &[u8], i64)) {
        use std::os::fd::AsRawFd;
        let fd = self.0.as_raw_fd();
        let wait = until.saturating_duration_since(Instant::now());
        let timeout = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(wait.subsec_nanos() as i32),
        };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; ppoll has nanosecond timeouts where epoll has milliseconds.
        if unsafe { libc::ppoll(&mut pfd, 1, &timeout, std::ptr::null()) } <= 0 {
            return;
        }
        let mut bufs = vec![[0u8; 1500]; BATCH];
        let mut controls = vec![[0u8; 64]; BATCH];
        // SAFETY: all-zero sockaddr_in is valid; it is filled by the kernel.
        let mut names: Vec<libc::sockaddr_in> = vec![unsafe { std::mem::zeroed() }; BATCH];
        loop {
            let mut iovs: Vec<libc::iovec> = bufs
                .iter_mut()
                .map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                })
                .collect();
            let mut msgs: Vec<libc::mmsghdr> = names
                .iter_mut()
                .zip(iovs.iter_mut())
                .zip(controls.iter_mut())
                .map(|((name, iov), control)| {
                    let mut m = mmsghdr(name, iov);
                    m.msg_hdr.msg_control = control.as_mut_ptr().cast();
                    m.msg_hdr.msg_controllen = control.len();
                    m
                })
                .collect();
            // SAFETY: BATCH headers whose buffers outlive the call.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n <= 0 {
                return;
            }
            for (i, m) in msgs.iter().take(n as usize).enumerate() {
                // SAFETY: the kernel filled msg_control with msg_controllen bytes of cmsgs.
                let at = unsafe { kernel_timestamp(&m.msg_hdr) };
                let len = m.msg_len as usize;
                got(u16::from_be(names[i].sin_port), &bufs[i][..len], at);
            }
            if (n as usize) < BATCH {
                return;
            }
        }
    }
}

/// The SO_TIMESTAMPNS control message of a received datagram, in ns (0 when absent).
///
/// # Safety
/// `hdr` must be a msghdr the kernel just filled by recvmmsg.
unsafe fn kernel_timestamp(hdr: &libc::msghdr) -> i64 {
    // SAFETY: per the contract, the cmsg chain is valid.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                return ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64;
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
        0
    }
}

/// The simulated callers: stream i sends at phase (i mod 20) ms of every 20 ms period, on
/// absolute deadlines, and records each returning packet's transit (arrival − media time).
fn far_end(
    sock: &FarSocket,
    media_ports: &[u16],
    start: Instant,
    measure_from: Instant,
    until: Instant,
    payload: Arc<Vec<u8>>,
) -> FarEndResult {
    let n = media_ports.len();
    let index: HashMap<u16, usize> = media_ports
        .iter()
        .enumerate()
        .map(|(i, &p)| (p, i))
        .collect();
    let mut res = FarEndResult {
        received: 0,
        transit: vec![Vec::with_capacity(1024); n],
    };
    let mut first: Vec<Option<(i64, u32)>> = vec![None; n];
    let mut seq = vec![0u16; n];
    let mut batch = Vec::with_capacity(n / 20 + 1);
    let tick = Duration::from_millis(1);
    let realtime_ns = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64)
    };
    // Kernel timestamps are CLOCK_REALTIME: the measuring window in that clock.
    let measure_from_ns = realtime_ns()
        + measure_from
            .saturating_duration_since(Instant::now())
            .as_nanos() as i64;
    let mut k: u32 = 0;
    loop {
        let next = start + tick * k;
        let now = Instant::now();
        if now >= until {
            return res;
        }
        if now >= next {
            batch.clear();
            for i in (k as usize % 20..n).step_by(20) {
                let mut pkt = [0u8; PACKET];
                let h = RtpHeader {
                    marker: seq[i] == 0,
                    payload_type: 0,
                    sequence: seq[i],
                    timestamp: u32::from(seq[i]).wrapping_mul(160),
                    ssrc: 0x1111,
                };
                let _ = h.write(&mut pkt);
                let off = (usize::from(seq[i]) * 160) % (payload.len() - 160);
                pkt[RTP_HEADER_LEN..].copy_from_slice(&payload[off..off + 160]);
                batch.push((SocketAddr::new(LOCALHOST, media_ports[i]), pkt));
                seq[i] = seq[i].wrapping_add(1);
            }
            sock.send_batch(&batch);
            k += 1;
            continue;
        }
        sock.receive(next, |port, data, at| {
            let Some(&i) = index.get(&port) else {
                return;
            };
            let Ok(p) = RtpPacket::parse(data) else {
                return;
            };
            if p.header.payload_type != 0 {
                return;
            }
            res.received += 1;
            let (t0, ts0) = *first[i].get_or_insert((at, p.header.timestamp));
            if at >= measure_from_ns {
                let media_ns = i64::from(p.header.timestamp.wrapping_sub(ts0)) * 125_000;
                res.transit[i].push((at - t0 - media_ns) / 1000);
            }
        });
    }
}

#[derive(Default)]
struct AppResult {
    frames: u64,
    /// Frame handed to the application minus its playout deadline (µs), after warm-up.
    lateness: Vec<i64>,
}

/// The simulated callers as their own process (`load farend`, in a session of its own so
/// the scheduler treats it as another host would be): reads the timing and the media ports
/// on stdin, prints its measurements on stdout.
fn far_end_process() {
    use std::io::BufRead;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines().map_while(Result::ok);
    let header: Vec<u64> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [start_in, warmup, secs] = header[..] else {
        eprintln!("farend: bad header");
        return;
    };
    let media_ports: Vec<u16> = lines.filter_map(|l| l.trim().parse::<u16>().ok()).collect();
    let sock = FarSocket::bind();
    let payload = Arc::new(caller_voice());
    let t_start = Instant::now() + Duration::from_millis(start_in);
    let measure_from = t_start + Duration::from_millis(warmup);
    let until = measure_from + Duration::from_secs(secs) + Duration::from_millis(200);
    let cpu0 = cpu_by_thread();
    let res = far_end(&sock, &media_ports, t_start, measure_from, until, payload);
    let cpu1 = cpu_by_thread();
    let cpu: f64 = cpu1.values().sum::<f64>() - cpu0.values().sum::<f64>();
    let mut jitter = vec![];
    for stream in &res.transit {
        if let Some(&min) = stream.iter().min() {
            jitter.extend(stream.iter().map(|t| t - min));
        }
    }
    jitter.sort_unstable();
    println!("received {}", res.received);
    println!(
        "jitter {} {} {} {} {}",
        percentile(&jitter, 0.5),
        percentile(&jitter, 0.99),
        percentile(&jitter, 0.999),
        jitter.last().copied().unwrap_or(0),
        jitter.len()
    );
    println!("cpu {cpu:.2}");
}

/// 1 s of a two-tone "voice" at 16 kHz.
fn voice16() -> Vec<i16> {
    (0..16_000)
        .map(|i| {
            let t = f64::from(i) / 16_000.0;
            ((t * std::f64::consts::TAU * 210.0).sin() * 5000.0
                + (t * std::f64::consts::TAU * 1300.0).sin() * 1500.0) as i16
        })
        .collect()
}

/// The same voice as 8 kHz μ-law, what the callers send.
fn caller_voice() -> Vec<u8> {
    voice16()
        .iter()
        .step_by(2)
        .map(|&s| linear_to_ulaw(s))
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "farend") {
        return far_end_process();
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let streams = args.first().copied().unwrap_or(1000);
    let secs = args.get(1).copied().unwrap_or(20) as u64;
    let media_threads = args.get(2).copied();
    // `poll`: one consumer task drains every call every 10 ms instead of a task per call
    // woken per frame: far cheaper for the process, but frames wait up to 10 ms, so the
    // added-latency figure is only meaningful without it.
    let poll_consumer = std::env::args().any(|a| a == "poll");
    // `rt`: shard threads (and the far-end process and the consumer) run SCHED_FIFO;
    // `rt-media`: only the shard threads do, as `[media] realtime_priority` configures.
    let realtime = std::env::args().any(|a| a == "rt");
    let realtime_media = realtime || std::env::args().any(|a| a == "rt-media");
    let warmup = Duration::from_secs(3);

    let mut cfg = MediaRuntimeConfig::new(LOCALHOST, 20000, 29999);
    if let Some(threads) = media_threads {
        cfg.threads = threads;
    }
    let media_threads = cfg.threads;
    cfg.realtime_priority = realtime_media.then_some(50);
    cfg.reuse_guard = Duration::ZERO;
    let media = MediaRuntime::new(cfg).expect("media runtime");
    let app = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("app")
        .on_thread_start(move || {
            if realtime {
                // The consumer stands for the agent bridge: keep it out of the CPU queue too.
                let param = libc::sched_param { sched_priority: 30 };
                // SAFETY: valid sched_param; pid 0 is the calling thread.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            }
        })
        .enable_all()
        .build()
        .expect("app runtime");

    let agent_voice = Arc::new(voice16());

    let stop = Arc::new(AtomicBool::new(false));
    let t_start = Instant::now() + Duration::from_millis(500 + streams as u64 / 2);
    let measure_from = t_start + warmup;
    let measure_until = measure_from + Duration::from_secs(secs);
    let mut media_ports = vec![];
    let mut app_tasks = vec![];
    let mut polled_calls = vec![];
    for _ in 0..streams {
        let ports = media.reserve().expect("port pair");
        // The far end's address is learnt by latching onto its first packet (symmetric
        // RTP), as with a caller behind NAT; until then packets go to the discard port.
        let mut call = media
            .start(
                ports,
                CallMediaConfig::new(CodecKind::Pcmu, 0, SocketAddr::new(LOCALHOST, 9)),
                None,
            )
            .expect("start call");
        media_ports.push(call.local_rtp().port());
        if poll_consumer {
            polled_calls.push(call);
            continue;
        }
        let (stop3, agent) = (stop.clone(), agent_voice.clone());
        app_tasks.push(app.spawn(async move {
            let mut res = AppResult::default();
            let mut next_talk = tokio::time::Instant::now();
            while !stop3.load(Ordering::Relaxed) {
                tokio::select! {
                    ev = call.recv() => match ev {
                        Some(CallEvent::Audio(f)) => {
                            res.frames += 1;
                            let now = Instant::now();
                            if now >= measure_from && now < measure_until {
                                res.lateness.push(now.saturating_duration_since(f.due).as_micros() as i64);
                            }
                        }
                        Some(CallEvent::Media(_)) => {}
                        None => break,
                    },
                    () = tokio::time::sleep_until(next_talk) => {
                        let _ = call.push_agent_audio(agent.to_vec());
                        next_talk += Duration::from_secs(2);
                    }
                }
            }
            let q = call.hangup().await.ok();
            (res, vec![q])
        }));
    }
    if poll_consumer {
        let (stop3, agent) = (stop.clone(), agent_voice.clone());
        let mut calls = std::mem::take(&mut polled_calls);
        app_tasks.push(app.spawn(async move {
            let mut res = AppResult::default();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut round: u64 = 0;
            while !stop3.load(Ordering::Relaxed) {
                tick.tick().await;
                for (i, call) in calls.iter_mut().enumerate() {
                    while let Some(ev) = call.try_recv() {
                        res.frames += u64::from(matches!(ev, CallEvent::Audio(_)));
                    }
                    // Each call talks 1 s in every 2 s, the calls staggered over the period.
                    if (round + i as u64) % 200 == 0 {
                        let _ = call.push_agent_audio(agent.to_vec());
                    }
                }
                round += 1;
            }
            let mut qs = vec![];
            for call in calls {
                qs.push(call.hangup().await.ok());
            }
            (res, qs)
        }));
    }
    let far = spawn_far_end(&media_ports, t_start, warmup, secs, realtime);
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
    let cpu0 = cpu_by_thread();
    let w0 = Instant::now();
    std::thread::sleep(measure_until.saturating_duration_since(Instant::now()));
    let cpu1 = cpu_by_thread();
    let wall = w0.elapsed().as_secs_f64();
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    stop.store(true, Ordering::Relaxed);

    let qualities: Arc<Mutex<Vec<CallQuality>>> = Arc::default();
    let mut lateness = vec![];
    let mut frames = 0;
    for t in app_tasks {
        if let Ok((res, qs)) = app.block_on(t) {
            frames += res.frames;
            lateness.extend(res.lateness);
            qualities
                .lock()
                .expect("lock")
                .extend(qs.into_iter().flatten());
        }
    }
    let far_report = far
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let qs = qualities.lock().expect("lock");
    let sum = |f: fn(&CallQuality) -> u64| qs.iter().map(f).sum::<u64>();
    let received = sum(|q| q.packets_received);
    let (late, lost, concealed) = (
        sum(|q| q.late),
        sum(|q| q.packets_lost),
        sum(|q| q.concealed),
    );
    lateness.sort_unstable();
    let cpu = |name: &str| cpu1.get(name).unwrap_or(&0.0) - cpu0.get(name).unwrap_or(&0.0);
    let media_cpu = cpu("media-rt");
    println!(
        "streams {streams}, media threads {media_threads}{}, consumer {}, measured {wall:.1} s after {warmup:?} warm-up",
        match (realtime, realtime_media) {
            (true, _) => " (all SCHED_FIFO)",
            (false, true) => " (SCHED_FIFO)",
            _ => "",
        },
        if poll_consumer { "polling every 10 ms" } else { "task per call" }
    );
    println!(
        "loadavg before: {}  after: {}",
        load_before.trim(),
        load_after.trim()
    );
    println!("calls reporting quality: {}", qs.len());
    println!(
        "inbound (caller->media): packets {received}, lost {lost} ({:.4} %), late {late} ({:.4} %), concealed {concealed} ({:.4} %)",
        lost as f64 * 100.0 / received.max(1) as f64,
        late as f64 * 100.0 / received.max(1) as f64,
        concealed as f64 * 100.0 / received.max(1) as f64
    );
    println!("frames delivered to the app: {frames}");
    let field = |key: &str| -> Vec<String> {
        far_report
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|rest| rest.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let (j, received_far, far_cpu) = (field("jitter "), field("received "), field("cpu "));
    println!(
        "outbound pacing (far-end arrival jitter, µs): p50 {} p99 {} p99.9 {} max {} over {} packets; far ends received {}",
        j.first().map_or("?", String::as_str),
        j.get(1).map_or("?", String::as_str),
        j.get(2).map_or("?", String::as_str),
        j.get(3).map_or("?", String::as_str),
        j.get(4).map_or("?", String::as_str),
        received_far.first().map_or("?", String::as_str)
    );
    println!(
        "added latency (frame to app minus playout deadline, µs): p50 {} p99 {} max {}",
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        lateness.last().copied().unwrap_or(0)
    );
    println!(
        "CPU over the window (s): media {media_cpu:.2}, app {:.2}, far-end process {} (whole run); media per stream {:.4} % of a core",
        cpu("app"),
        far_cpu.first().map_or("?", String::as_str),
        media_cpu / wall / streams as f64 * 100.0
    );
    drop(qs);
    // Runtimes must not be dropped inside async contexts; they are not.
    drop(app);
    drop(media);
}
