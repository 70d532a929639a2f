//! The worker pool: concurrent jobs give the same text as sequential ones, a full pool is
//! refused at once, and an over-long job is aborted.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use voxbridge_asr::frontend::{to_model_input, Upsampler};
use voxbridge_asr::{parse_wav, AsrConfig, AsrError, Question, SpeechEngine};

fn clip(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(common::fixtures().join(name)).unwrap();
    to_model_input(&parse_wav(&bytes).unwrap(), Upsampler::ZeroStuff)
}

fn engine(max_concurrent: usize, threads: usize, timeout: Duration) -> SpeechEngine {
    SpeechEngine::with_model(
        common::model(),
        AsrConfig {
            max_concurrent,
            threads,
            timeout,
            ..AsrConfig::new(common::model_path())
        },
    )
    .unwrap()
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

#[test]
fn a_full_pool_refuses_immediately() {
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
    assert_eq!(engine.pool().in_flight(), 1);
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
