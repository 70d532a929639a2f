//! A bounded pool of recognition workers behind a priority queue. Each worker owns one
//! decoding session (its own whisper state) for its whole life; the model itself is shared.
//!
//! A job waits in the queue for a free worker instead of being refused: an utterance dropped
//! for lack of a free recognizer is a lost answer. The queue takes the answer an agent is
//! waiting on first, then free-form turns, then listen-only transcription, each in the order
//! they came. It is bounded (`max_queued`); only a full queue or a closed pool refuses work.
//! [`RecognizerPool::try_submit`] is for work worth doing only on a worker that is free now
//! (early recognitions): it never queues behind other jobs. A low-confidence recognition gets
//! its second opinion (a second decode) only if nobody is waiting for a recognizer then and it
//! can still end within the latency target.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::AsrError;
use crate::transcriber::{
    samples_ms, JobLimits, Recognition, Request, Session, Transcriber, PAIR_GAP_MS, PAIR_MAX_MS,
};

/// Called on the worker thread with the job's outcome.
pub type Completion = Box<dyn FnOnce(Result<Recognition, AsrError>) + Send>;

/// Who is waiting for a recognition, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Transcription only: nobody waits for it during the call.
    Listen,
    /// A free-form turn the agent will reply to.
    Turn,
    /// The answer to the question the agent is waiting on.
    Answer,
}

/// Pool sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Jobs that may run at once (= worker threads = whisper states).
    pub max_concurrent: usize,
    /// A job running longer than this is aborted with [`AsrError::Timeout`].
    pub timeout: Duration,
    /// Jobs that may wait for a worker; more are refused ([`AsrError::Busy`]).
    pub max_queued: usize,
    /// Queued → recognized within this, if set: optional work (a second opinion) that would
    /// end later is skipped.
    pub latency_target: Option<Duration>,
    /// While others wait, a worker takes two short free-form utterances (not answers the agent
    /// waits on) at once and recognizes them in one decode ([`Session::recognize_pair`]).
    pub pair_utterances: bool,
}

struct Job {
    audio: Vec<f32>,
    request: Request,
    priority: Priority,
    queued_at: Instant,
    /// Arrival order, for first come first served within a priority.
    seq: u64,
    done: Completion,
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Job {}

impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Job {
    /// The heap's greatest is the next to run: highest priority, then the earliest.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

struct Queue {
    waiting: BinaryHeap<Job>,
    next_seq: u64,
    open: bool,
    /// When the latest jobs were taken by a worker and how long each had waited, oldest first.
    recent_waits: VecDeque<(Instant, Duration)>,
    pairing: PairRecord,
}

/// How pairs came out: a pair that cannot be split again costs its decode and then both alone,
/// so past about a third failing, pairing costs more than it saves.
#[derive(Default)]
struct PairRecord {
    /// The latest outcomes, oldest first: true when the pair was split into its two texts.
    recent: VecDeque<bool>,
    /// Chances to pair passed up since pairing last looked failing.
    declined: u32,
    /// Every pair so far: split into its two texts, and recognized again one by one.
    split: usize,
    failed: usize,
}

/// Pair outcomes [`PairRecord`] looks at.
const RECENT_PAIRS: usize = 16;
/// While pairs keep failing, one chance in this many is still taken, to notice a change.
const PAIR_PROBE_EVERY: u32 = 8;

impl PairRecord {
    fn record(&mut self, split: bool) {
        if split {
            self.split += 1;
        } else {
            self.failed += 1;
        }
        if self.recent.len() == RECENT_PAIRS {
            self.recent.pop_front();
        }
        self.recent.push_back(split);
    }

    /// Whether to pair now: yes unless a third or more of at least 8 recent pairs failed.
    fn pays(&mut self) -> bool {
        let failed = self.recent.iter().filter(|split| !**split).count();
        if self.recent.len() < RECENT_PAIRS / 2 || failed * 3 < self.recent.len() {
            return true;
        }
        self.declined += 1;
        if self.declined >= PAIR_PROBE_EVERY {
            self.declined = 0;
            return true;
        }
        false
    }
}

/// Jobs whose queue wait [`RecognizerPool::recent_wait`] looks at.
const RECENT_JOBS: usize = 64;

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Jobs a worker is recognizing now.
    running: AtomicUsize,
    /// Second decodes not made: other jobs were waiting, or it would have missed the target.
    second_opinions_skipped: AtomicUsize,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A completion that panicked cannot leave the queue half-changed: keep going.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Fixed set of workers fed from a bounded priority queue.
pub struct RecognizerPool {
    shared: Arc<Shared>,
    config: PoolConfig,
    workers: Vec<JoinHandle<()>>,
}

/// Counts the jobs as running while it lives, even if the recognition panics.
struct Running<'a>(&'a AtomicUsize, usize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

/// A free-form utterance short enough to share a decode with another one. Not the answer the
/// agent waits on: pairing would make it wait for a second decode's words too.
fn pairable(job: &Job) -> bool {
    let request = &job.request;
    job.priority != Priority::Answer
        && request.prompt.is_none()
        && request.candidates.is_empty()
        && !request.settings.answer_model
        && samples_ms(job.audio.len()) + PAIR_GAP_MS <= PAIR_MAX_MS
}

impl Queue {
    /// The next job, and with it the best waiting job to recognize in the same decode.
    fn take(&mut self, pair: bool) -> Option<(Job, Option<Job>)> {
        let job = self.waiting.pop()?;
        if !pair || !pairable(&job) || self.waiting.is_empty() || !self.pairing.pays() {
            return Some((job, None));
        }
        let fits = |other: &Job| {
            pairable(other)
                && other.request == job.request
                && samples_ms(job.audio.len() + other.audio.len()) + PAIR_GAP_MS <= PAIR_MAX_MS
        };
        let best = self
            .waiting
            .iter()
            .enumerate()
            .filter(|(_, other)| fits(other))
            .max_by(|(_, a), (_, b)| a.cmp(b))
            .map(|(i, _)| i);
        let Some(index) = best else {
            return Some((job, None));
        };
        let mut rest = std::mem::take(&mut self.waiting).into_vec();
        let partner = rest.swap_remove(index);
        self.waiting = BinaryHeap::from(rest);
        Some((job, Some(partner)))
    }

    fn record_wait(&mut self, job: &Job) -> Duration {
        if self.recent_waits.len() == RECENT_JOBS {
            self.recent_waits.pop_front();
        }
        let waited = job.queued_at.elapsed();
        self.recent_waits.push_back((Instant::now(), waited));
        waited
    }
}

fn work(mut session: Box<dyn Session>, shared: Arc<Shared>, config: PoolConfig) {
    let PoolConfig {
        timeout,
        latency_target,
        pair_utterances,
        ..
    } = config;
    loop {
        let ((job, waited), partner) = {
            let mut queue = shared.queue();
            loop {
                if let Some((job, partner)) = queue.take(pair_utterances) {
                    // Counted under the lock, so `try_submit` never sees a taken job as free.
                    shared
                        .running
                        .fetch_add(1 + usize::from(partner.is_some()), Ordering::AcqRel);
                    let waited = queue.record_wait(&job);
                    let partner = partner.map(|p| {
                        let waited = queue.record_wait(&p);
                        (p, waited)
                    });
                    break ((job, waited), partner);
                }
                if !queue.open {
                    return;
                }
                queue = shared
                    .ready
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let running = Running(&shared.running, 1 + usize::from(partner.is_some()));
        let deadline = Instant::now() + timeout;
        let may_spend_for = |queued_at: Instant| {
            let respond_by = latency_target.map(|target| queued_at + target);
            let shared = &shared;
            move |extra: Duration| {
                let late = respond_by.is_some_and(|by| Instant::now() + extra > by);
                let refused = late || !shared.queue().waiting.is_empty();
                if refused {
                    shared
                        .second_opinions_skipped
                        .fetch_add(1, Ordering::Relaxed);
                }
                !refused
            }
        };
        let may_spend = may_spend_for(job.queued_at);
        let limits = JobLimits {
            deadline: Some(deadline),
            may_spend: &may_spend,
        };
        let with_wait = |waited: Duration| {
            move |recognition: Recognition| Recognition {
                queue_wait: waited,
                ..recognition
            }
        };
        let Some((partner, partner_waited)) = partner else {
            let result = session
                .recognize(&job.audio, &job.request, &limits)
                .map(with_wait(waited));
            // Free the worker before reporting, so the callback may submit follow-up work.
            drop(running);
            (job.done)(result);
            continue;
        };
        let results =
            match session.recognize_pair(&job.audio, &partner.audio, &job.request, &limits) {
                Ok(Some([one, two])) => {
                    shared.queue().pairing.record(true);
                    // Recognized together, so neither got a second opinion.
                    let low = job.request.settings.retry_below.unwrap_or(0.0);
                    let skipped =
                        usize::from(one.confidence < low) + usize::from(two.confidence < low);
                    shared
                        .second_opinions_skipped
                        .fetch_add(skipped, Ordering::Relaxed);
                    [Ok(one), Ok(two)]
                }
                // Not told apart, or failed: each alone gets its own outcome (a timed-out pair
                // times out again at once).
                Ok(None) | Err(_) => {
                    shared.queue().pairing.record(false);
                    let partner_spend = may_spend_for(partner.queued_at);
                    let partner_limits = JobLimits {
                        deadline: Some(deadline),
                        may_spend: &partner_spend,
                    };
                    [
                        session.recognize(&job.audio, &job.request, &limits),
                        session.recognize(&partner.audio, &partner.request, &partner_limits),
                    ]
                }
            };
        drop(running);
        let [first, second] = results;
        (job.done)(first.map(with_wait(waited)));
        (partner.done)(second.map(with_wait(partner_waited)));
    }
}

impl RecognizerPool {
    /// Creates every session up front: a model that cannot make a session fails here, at
    /// start-up, not on the first call.
    pub fn new(model: &dyn Transcriber, config: PoolConfig) -> Result<Self, AsrError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                waiting: BinaryHeap::new(),
                next_seq: 0,
                open: true,
                recent_waits: VecDeque::with_capacity(RECENT_JOBS),
                pairing: PairRecord::default(),
            }),
            ready: Condvar::new(),
            running: AtomicUsize::new(0),
            second_opinions_skipped: AtomicUsize::new(0),
        });
        let size = config.max_concurrent.max(1);
        let mut workers = Vec::with_capacity(size);
        for i in 0..size {
            let session = model.session()?;
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("asr-{i}"))
                .spawn(move || work(session, shared, config))
                .map_err(AsrError::WorkerSpawn)?;
            workers.push(handle);
        }
        Ok(RecognizerPool {
            shared,
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

    /// Jobs being recognized now.
    pub fn in_flight(&self) -> usize {
        self.shared.running.load(Ordering::Acquire)
    }

    /// Low-confidence recognitions that got no second opinion: other jobs waited, or it would
    /// have ended past the latency target.
    pub fn second_opinions_skipped(&self) -> usize {
        self.shared.second_opinions_skipped.load(Ordering::Relaxed)
    }

    /// Pairs of utterances recognized in one decode, and pairs whose text could not be split
    /// between them (each then recognized alone).
    pub fn pairs(&self) -> (usize, usize) {
        let queue = self.shared.queue();
        (queue.pairing.split, queue.pairing.failed)
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.shared.queue().waiting.len()
    }

    /// The `quantile` (0–1) of how long jobs waited for a worker: the latest (up to 64) taken
    /// in the last `within`, and those still waiting, so far. Zero when there are none: an idle
    /// pool does not keep reporting the wait of its last busy minute.
    pub fn recent_wait(&self, quantile: f64, within: Duration) -> Duration {
        let now = Instant::now();
        let queue = self.shared.queue();
        let taken = queue
            .recent_waits
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= within)
            .map(|(_, wait)| *wait);
        let waiting = queue
            .waiting
            .iter()
            .map(|job| now.duration_since(job.queued_at));
        let mut waits: Vec<Duration> = taken.chain(waiting).collect();
        drop(queue);
        waits.sort_unstable();
        let last = waits.len().saturating_sub(1);
        let at = (quantile.clamp(0.0, 1.0) * last as f64).round() as usize;
        waits.get(at).copied().unwrap_or_default()
    }

    /// Queues a job; the first free worker takes the highest-priority, earliest one and
    /// `done` runs on it with the outcome. [`AsrError::Busy`] only when the queue is full.
    pub fn submit(
        &self,
        audio: Vec<f32>,
        request: Request,
        priority: Priority,
        done: Completion,
    ) -> Result<(), AsrError> {
        let max_queued = self.config.max_queued;
        self.enqueue(audio, request, priority, done, |queue, _| {
            queue.waiting.len() < max_queued
        })
    }

    /// Starts a job only if a worker is free for it now (for work that is worth doing only at
    /// once, like an early recognition); [`AsrError::Busy`] otherwise.
    pub fn try_submit(
        &self,
        audio: Vec<f32>,
        request: Request,
        done: Completion,
    ) -> Result<(), AsrError> {
        let max = self.config.max_concurrent;
        // Jobs waiting now are about to be taken by idle workers: one must be left for this.
        self.enqueue(audio, request, Priority::Turn, done, |queue, running| {
            running + queue.waiting.len() < max
        })
    }

    fn enqueue(
        &self,
        audio: Vec<f32>,
        request: Request,
        priority: Priority,
        done: Completion,
        admit: impl FnOnce(&Queue, usize) -> bool,
    ) -> Result<(), AsrError> {
        let mut queue = self.shared.queue();
        if !queue.open {
            return Err(AsrError::PoolClosed);
        }
        if !admit(&queue, self.in_flight()) {
            return Err(AsrError::Busy(self.config.max_concurrent));
        }
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.waiting.push(Job {
            audio,
            request,
            priority,
            queued_at: Instant::now(),
            seq,
            done,
        });
        drop(queue);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Queues and waits for the outcome (for the CLI, tests and benches; not the media path).
    pub fn recognize(&self, audio: Vec<f32>, request: Request) -> Result<Recognition, AsrError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(
            audio,
            request,
            Priority::Answer,
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
        // Workers finish their current job and stop; jobs still waiting are told the pool
        // closed (only at shutdown is recognition work dropped).
        let waiting = {
            let mut queue = self.shared.queue();
            queue.open = false;
            std::mem::take(&mut queue.waiting)
        };
        self.shared.ready.notify_all();
        for job in waiting {
            (job.done)(Err(AsrError::PoolClosed));
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_pauses_while_pairs_keep_failing_and_probes_now_and_then() {
        let mut record = PairRecord::default();
        // Too few outcomes to judge, then mostly split: keep pairing.
        let mostly_split = [true, true, true, true, true, false, true, true, false, true];
        for split in mostly_split {
            assert!(record.pays());
            record.record(split);
        }
        // 3 failed of 11: still under a third.
        record.record(false);
        assert!(record.pays());
        // 4 of 12: pause, but take one chance in 8.
        record.record(false);
        let taken = (0..16).filter(|_| record.pays()).count();
        assert_eq!(taken, 2);
        // Pairs that split again push the failures out of the window.
        for _ in 0..RECENT_PAIRS {
            record.record(true);
        }
        assert!((0..4).all(|_| record.pays()));
    }
}
