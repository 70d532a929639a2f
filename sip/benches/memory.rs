//! Memory per established dialog and return to zero: N calls between two in-process endpoints
//! on a virtual clock (no sockets), measured with a counting global allocator.
//! Run: `cargo bench -p voxbridge-sip --bench memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use voxbridge_sip::endpoint::{CallRef, Endpoint, EndpointConfig, Event, PlaceCall, Transport};
use voxbridge_sip::sdp::{Codec, Direction, LocalMedia};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

struct Pair {
    a: Endpoint,
    b: Endpoint,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
    now: Instant,
}

impl Pair {
    fn deliver(&mut self) -> (Vec<Event>, Vec<Event>) {
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                self.b
                    .handle_datagram(self.now, t.transport, self.a_addr, t.payload);
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                self.a
                    .handle_datagram(self.now, t.transport, self.b_addr, t.payload);
            }
            ea.extend(std::iter::from_fn(|| self.a.poll_event()));
            eb.extend(std::iter::from_fn(|| self.b.poll_event()));
            if !moved {
                return (ea, eb);
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.deliver();
            match [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
            {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
    }
}

fn media(port: u16) -> LocalMedia {
    LocalMedia {
        addr: "127.0.0.1".parse().expect("ip"),
        port,
        codecs: vec![Codec::Pcmu],
        telephone_event: true,
        ptime: 20,
        direction: Direction::SendRecv,
    }
}

fn main() {
    const N: usize = 10_000;
    let now = Instant::now();
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
        "127.0.0.1:5070".parse().expect("a"),
        "127.0.0.1:5060".parse().expect("b"),
    );
    let cfg = |addr| EndpointConfig {
        rate_limit: None,
        ..EndpointConfig::new(addr)
    };
    let mut p = Pair {
        a: Endpoint::new(cfg(a_addr), now, 0),
        b: Endpoint::new(cfg(b_addr), now, 0),
        a_addr,
        b_addr,
        now,
    };
    let base = live();
    let mut calls: Vec<CallRef> = Vec::with_capacity(N);
    let calls_vec_bytes = live() - base;
    for i in 0..N {
        let pc = PlaceCall {
            peer: b_addr,
            transport: Transport::Udp,
            target: format!("sip:+1202555{:04}@127.0.0.1:5060", i % 10_000),
            from: "sip:+12025550100@127.0.0.1:5070".into(),
            credentials: None,
            media: media(40000),
            headers: Vec::new(),
        };
        let call = p.a.place_call(pc, p.now);
        calls.push(call);
        let (_, eb) = p.deliver();
        for e in eb {
            if let Event::Incoming(inc) = e {
                p.b.answer(inc.call, media(30000), p.now).expect("answer");
            }
        }
        p.deliver();
    }
    let with_tsx = live() - base - calls_vec_bytes;
    let (sa, sb) = (p.a.stats(), p.b.stats());
    p.advance(Duration::from_secs(40));
    let established = live() - base - calls_vec_bytes;
    let (ta, tb) = (p.a.stats(), p.b.stats());
    for &call in &calls {
        p.a.hangup(call, p.now).expect("hangup");
    }
    p.deliver();
    p.advance(Duration::from_secs(40));
    let after = live() - base - calls_vec_bytes;
    let (za, zb) = (p.a.stats(), p.b.stats());
    println!("calls: {N} (each is one UAC dialog on A and one UAS dialog on B)");
    println!("right after setup: {} transactions, {} dialogs; {:.0} bytes per call incl. lingering transactions", sa.transactions + sb.transactions, sa.calls + sb.calls, with_tsx as f64 / N as f64);
    println!("after 40 s (transactions expired): {} transactions, {} dialogs; {:.0} bytes per established dialog", ta.transactions + tb.transactions, ta.calls + tb.calls, established as f64 / (2 * N) as f64);
    println!(
        "after BYE + 40 s: {} transactions, {} dialogs; {} bytes still allocated",
        za.transactions + zb.transactions,
        za.calls + zb.calls,
        after
    );
}
