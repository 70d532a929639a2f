//! A bounded pool of recognition workers. Each worker owns one decoding session (its own
//! whisper state) for its whole life; the model itself is shared. Submitting never blocks or
//! queues: when every worker is busy the caller gets [`AsrError::Busy`] at once, so the media
//! path can refuse or drop work instead of absorbing latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::AsrError;
use crate::transcriber::{Recognition, Request, Session, Transcriber};

/// Called on the worker thread with the job's outcome.
pub type Completion = Box<dyn FnOnce(Result<Recognition, AsrError>) + Send>;

/// Pool sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Jobs that may run at once (= worker threads = whisper states).
    pub max_concurrent: usize,
    /// A job running longer than this is aborted with [`AsrError::Timeout`].
    pub timeout: Duration,
}

struct Job {
    audio: Vec<f32>,
    request: Request,
    deadline: Instant,
    done: Completion,
}

/// Fixed set of workers with non-blocking admission.
pub struct RecognizerPool {
    jobs: Option<Sender<Job>>,
    in_flight: Arc<AtomicUsize>,
    config: PoolConfig,
    workers: Vec<JoinHandle<()>>,
}

/// Releases the job's slot when dropped, even if the completion panics.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn work(
    mut session: Box<dyn Session>,
    jobs: Arc<Mutex<Receiver<Job>>>,
    in_flight: Arc<AtomicUsize>,
) {
    loop {
        // The lock is held only while waiting for the next job, never while recognizing.
        let next = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        let slot = Slot(Arc::clone(&in_flight));
        let result = session.recognize(&job.audio, &job.request, Some(job.deadline));
        // Free the slot before reporting, so the callback may submit follow-up work.
        drop(slot);
        (job.done)(result);
    }
}

impl RecognizerPool {
    /// Creates every session up front: a model that cannot make a session fails here, at
    /// start-up, not on the first call.
    pub fn new(model: &dyn Transcriber, config: PoolConfig) -> Result<Self, AsrError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let size = config.max_concurrent.max(1);
        let mut workers = Vec::with_capacity(size);
        for i in 0..size {
            let session = model.session()?;
            let (rx, in_flight) = (Arc::clone(&rx), Arc::clone(&in_flight));
            let handle = std::thread::Builder::new()
                .name(format!("asr-{i}"))
                .spawn(move || work(session, rx, in_flight))
                .map_err(AsrError::WorkerSpawn)?;
            workers.push(handle);
        }
        Ok(RecognizerPool {
            jobs: Some(tx),
            in_flight,
            config: PoolConfig {
                max_concurrent: size,
                ..config
            },
            workers,
        })
    }

    pub fn capacity(&self) -> usize {
        self.config.max_concurrent
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Starts a job if a worker is free; `done` runs on the worker with the outcome.
    /// Returns [`AsrError::Busy`] immediately when all workers are taken.
    pub fn try_submit(
        &self,
        audio: Vec<f32>,
        request: Request,
        done: Completion,
    ) -> Result<(), AsrError> {
        let max = self.config.max_concurrent;
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| AsrError::Busy(max))?;
        let job = Job {
            audio,
            request,
            deadline: Instant::now() + self.config.timeout,
            done,
        };
        let sent = self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(AsrError::PoolClosed);
        }
        Ok(())
    }

    /// Submits and waits for the outcome (for the CLI, tests and benches; not the media path).
    pub fn recognize(&self, audio: Vec<f32>, request: Request) -> Result<Recognition, AsrError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.try_submit(
            audio,
            request,
            Box::new(move |result| {
                // The waiter may have gone away; nothing else needs the result.
                let _ = tx.send(result);
            }),
        )?;
        rx.recv().map_err(|_| AsrError::PoolClosed)?
    }
}

impl Drop for RecognizerPool {
    fn drop(&mut self) {
        // Closing the channel ends every worker after its current job.
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
