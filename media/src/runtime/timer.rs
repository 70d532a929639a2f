//! A timerfd the shard's epoll waits on: nanosecond deadlines, where epoll's own timeout
//! only has millisecond resolution (rounded up, i.e. up to 1 ms late).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

pub(super) struct TimerFd(OwnedFd);

impl TimerFd {
    pub(super) fn new(registry: &Registry, token: Token) -> io::Result<Self> {
        // SAFETY: plain syscall; the returned descriptor is owned below.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        registry.register(&mut SourceFd(&owned.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Self(owned))
    }

    /// Fires once, `after` from now (a zero duration fires at once).
    pub(super) fn arm(&self, after: Duration) -> io::Result<()> {
        // A zero it_value would disarm the timer: use the smallest positive one instead.
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(after.subsec_nanos() as i32),
            },
        };
        // SAFETY: valid descriptor and itimerspec; the old value is not requested.
        let rc =
            unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Consumes the expiration so the descriptor can signal again.
    pub(super) fn clear(&self) {
        let mut expirations = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a buffer of 8; EAGAIN is fine.
        unsafe {
            libc::read(
                self.0.as_raw_fd(),
                expirations.as_mut_ptr().cast(),
                expirations.len(),
            );
        }
    }
}
