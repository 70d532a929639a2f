//! The worker pool: concurrent jobs give the same text as sequential ones, waiting jobs run by
//! priority then arrival, a full queue (or, for try-now work, a busy pool) is refused at once,
//! and an over-long job is aborted.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use voxbridge_asr::frontend::{to_model_input, Upsampler};
use voxbridge_asr::{
    parse_wav, AsrConfig, AsrError, Priority, Question, Recognition, SpeechEngine,
};

fn clip(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(common::fixtures().join(name)).unwrap();
    to_model_input(&parse_wav(&bytes).unwrap(), Upsampler::ZeroStuff)
}

fn engine(max_concurrent: usize, threads: usize, timeout: Duration) -> SpeechEngine {
    engine_queueing(max_concurrent, threads, timeout, 256)
}

fn engine_queueing(
    max_concurrent: usize,
    threads: usize,
    timeout: Duration,
    max_queued: usize,
) -> SpeechEngine {
    SpeechEngine::with_model(
        common::model(),
        AsrConfig {
            max_concurrent,
            threads,
            timeout,
            max_queued,
            ..common::config()
        },
    )
    .unwrap()
}

/// Until the pool's one worker has taken the job submitted last.
fn wait_running(engine: &SpeechEngine) {
    let start = Instant::now();
    while engine.pool().queued() > 0 || engine.pool().in_flight() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the worker never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn waiting_jobs_run_by_priority_then_arrival_and_none_is_refused() {
    let engine = engine(1, 1, Duration::from_secs(60));
    let (tx, rx) = mpsc::channel();
    let submit = |label: &'static str, priority: Priority| {
        let tx = tx.clone();
        let mut req = engine.request(&Question::free());
        // Every decode asks for a second opinion.
        req.settings.retry_below = Some(2.0);
        let audio = clip("yes_no_01.wav");
        let done = Box::new(move |r: Result<Recognition, AsrError>| {
            tx.send((label, r.map(|r| r.queue_wait))).unwrap()
        });
        engine.pool().submit(audio, req, priority, done).unwrap();
    };
    submit("running", Priority::Listen);
    wait_running(&engine);
    submit("listen 1", Priority::Listen);
    submit("turn 1", Priority::Turn);
    submit("listen 2", Priority::Listen);
    submit("answer", Priority::Answer);
    submit("turn 2", Priority::Turn);
    assert_eq!(engine.pool().queued(), 5);
    let done: Vec<(&str, Duration)> = (0..6)
        .map(|_| rx.recv().unwrap())
        .map(|(label, wait)| (label, wait.unwrap()))
        .collect();
    let order: Vec<&str> = done.iter().map(|(label, _)| *label).collect();
    assert_eq!(
        order,
        ["running", "answer", "turn 1", "turn 2", "listen 1", "listen 2"]
    );
    // Each result says how long it waited for the worker.
    assert!(done[0].1 < Duration::from_millis(50), "{done:?}");
    assert!(done[5].1 > done[1].1 && done[1].1 > done[0].1, "{done:?}");
    // Second opinions are given only while nobody waits: to the last job alone.
    assert_eq!(engine.pool().second_opinions_skipped(), 5);
    // The last ones waited behind four recognitions; the first did not wait.
    let minute = Duration::from_secs(60);
    let p0 = engine.pool().recent_wait(0.0, minute);
    let p95 = engine.pool().recent_wait(0.95, minute);
    assert!(p0 < Duration::from_millis(50), "{p0:?}");
    assert!(
        p95 > Duration::from_millis(50) && p95 > p0 * 4,
        "{p0:?} {p95:?}"
    );
    // Waits taken longer ago than the window, and nothing waiting now: no wait.
    std::thread::sleep(Duration::from_millis(20));
    let stale = engine.pool().recent_wait(0.95, Duration::from_millis(10));
    assert_eq!(stale, Duration::ZERO);
}

#[test]
fn a_full_queue_refuses_immediately() {
    let engine = engine_queueing(1, 1, Duration::from_secs(60), 1);
    let (tx, rx) = mpsc::channel();
    let submit = |priority| {
        let tx = tx.clone();
        let done = Box::new(move |r: Result<_, AsrError>| tx.send(r.is_ok()).unwrap());
        let req = engine.request(&Question::free());
        engine
            .pool()
            .submit(clip("yes_no_01.wav"), req, priority, done)
    };
    submit(Priority::Turn).unwrap();
    wait_running(&engine);
    submit(Priority::Turn).unwrap();
    let refused = submit(Priority::Answer);
    assert!(matches!(refused, Err(AsrError::Busy(1))), "{refused:?}");
    assert_eq!((rx.recv().unwrap(), rx.recv().unwrap()), (true, true));
}

#[test]
fn four_concurrent_transcriptions_equal_sequential_ones() {
    let clips: Vec<Vec<f32>> = [
        "free_01.wav",
        "free_05.wav",
        "yes_no_03.wav",
        "digits_01.wav",
    ]
    .iter()
    .map(|n| clip(n))
    .collect();
    let long = Duration::from_secs(60);
    let sequential_engine = engine(1, 1, long);
    let sequential: Vec<String> = clips
        .iter()
        .map(|a| {
            let req = sequential_engine.request(&Question::free());
            sequential_engine
                .pool()
                .recognize(a.clone(), req)
                .unwrap()
                .text
        })
        .collect();

    let concurrent_engine = engine(4, 1, long);
    let (tx, rx) = mpsc::channel();
    for (i, audio) in clips.iter().enumerate() {
        let tx = tx.clone();
        let req = concurrent_engine.request(&Question::free());
        concurrent_engine
            .pool()
            .try_submit(
                audio.clone(),
                req,
                Box::new(move |r| tx.send((i, r)).unwrap()),
            )
            .unwrap();
    }
    let mut concurrent = vec![String::new(); clips.len()];
    for _ in 0..clips.len() {
        let (i, r) = rx.recv().unwrap();
        concurrent[i] = r.unwrap().text;
    }
    assert_eq!(concurrent, sequential);
    assert!(sequential.iter().all(|t| !t.is_empty()), "{sequential:?}");
}

/// Work worth doing only at once (an early recognition) does not queue behind a busy worker.
#[test]
fn try_now_work_is_refused_immediately_by_a_busy_pool() {
    let engine = engine(1, 1, Duration::from_secs(60));
    let audio = clip("free_11.wav");
    let (tx, rx) = mpsc::channel();
    let req = engine.request(&Question::free());
    engine
        .pool()
        .try_submit(
            audio.clone(),
            req.clone(),
            Box::new(move |r| tx.send(r).unwrap()),
        )
        .unwrap();
    wait_running(&engine);
    let start = Instant::now();
    let refused = engine
        .pool()
        .try_submit(audio, req, Box::new(|_| panic!("must not run")));
    assert!(matches!(refused, Err(AsrError::Busy(1))), "{refused:?}");
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "{:?}",
        start.elapsed()
    );
    assert!(rx.recv().unwrap().is_ok());
}

#[test]
fn an_over_long_job_times_out() {
    let engine = engine(1, 1, Duration::from_millis(1));
    let req = engine.request(&Question::free());
    let result = engine.pool().recognize(clip("free_11.wav"), req);
    assert!(matches!(result, Err(AsrError::Timeout)), "{result:?}");
    // The worker survives and takes the next job.
    assert_eq!(engine.pool().in_flight(), 0);
}

#[test]
fn a_second_opinion_that_would_miss_the_latency_target_is_skipped() {
    let run = |target: Option<Duration>| {
        let engine = SpeechEngine::with_model(
            common::model(),
            AsrConfig {
                timeout: Duration::from_secs(60),
                latency_target: target,
                ..common::config()
            },
        )
        .unwrap();
        let mut req = engine.request(&Question::free());
        // Every decode asks for a second opinion.
        req.settings.retry_below = Some(2.0);
        engine.pool().recognize(clip("yes_no_01.wav"), req).unwrap();
        engine.pool().second_opinions_skipped()
    };
    assert_eq!(run(None), 0, "no target: the second opinion is given");
    assert_eq!(
        run(Some(Duration::from_millis(1))),
        1,
        "it would end too late"
    );
}

/// While others wait, two short free-form utterances share one decode and each gets its own
/// text; an answer to a question is never paired, and without the setting nothing is.
#[test]
fn waiting_free_form_utterances_are_recognized_in_pairs() {
    let run = |pair_utterances: bool| {
        let engine = SpeechEngine::with_model(
            common::model(),
            AsrConfig {
                timeout: Duration::from_secs(60),
                pair_utterances,
                ..common::config()
            },
        )
        .unwrap();
        let (tx, rx) = mpsc::channel();
        let submit = |name: &'static str, question: Question, priority: Priority| {
            let tx = tx.clone();
            let done = Box::new(move |r: Result<Recognition, AsrError>| {
                tx.send((name, r.unwrap().text)).unwrap()
            });
            let req = engine.request(&question);
            engine
                .pool()
                .submit(clip(name), req, priority, done)
                .unwrap();
        };
        submit("free_01.wav", Question::free(), Priority::Listen);
        wait_running(&engine);
        let yes_no = Question::asked("Shall I book it?", voxbridge_asr::AnswerType::YesNo);
        submit("free_02.wav", Question::free(), Priority::Listen);
        submit("yes_no_01.wav", yes_no, Priority::Answer);
        submit("free_03.wav", Question::free(), Priority::Turn);
        let texts: std::collections::HashMap<&str, String> =
            (0..4).map(|_| rx.recv().unwrap()).collect();
        (texts, engine.pool().pairs())
    };

    let (texts, pairs) = run(true);
    assert_eq!(
        pairs,
        (1, 0),
        "free_02 and free_03 in one decode: {texts:?}"
    );
    for (name, reference) in [
        (
            "free_02.wav",
            "My internet has been down since yesterday morning.",
        ),
        ("free_03.wav", "Can you tell me when my next bill is due?"),
    ] {
        let mut tally = voxbridge_asr::wer::WerTally::default();
        tally.add(reference, &texts[name]);
        assert!(tally.wer() <= 0.3, "{name}: {:?} ({texts:?})", texts[name]);
    }
    assert!(
        texts["yes_no_01.wav"].to_lowercase().contains("yes"),
        "{texts:?}"
    );

    let (_, pairs) = run(false);
    assert_eq!(pairs, (0, 0));
}
