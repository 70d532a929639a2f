//! The conversation on an answered call: the builtin agent's [`Conversation`] driven by the
//! call's media (caller audio cut into utterances and recognized, DTMF, VAD barge-in), its SIP
//! events and the clock; the agent's prompts synthesized and queued for playout. Both sides go
//! into the transcript, timed from the start of the call's media.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use voxbridge_asr::{AnswerType, AsrError, TranscriptionOutput};
use voxbridge_media::pipeline::MediaEvent;
use voxbridge_media::runtime::{CallEvent as MediaCallEvent, CallHandle};
use voxbridge_media::vad::VadEvent;
use voxbridge_sip::endpoint::CallEvent;

use super::inbound_call::{end_reason, receives, sends, RtpWatch};
use super::utterances::{Utterance, UtteranceCutter};
use super::{stopped, CallServices};
use crate::agents::conversation::{Action, Conversation, Heard, Script};
use crate::domain::{Analysis, EndReason, Question, Speaker, TranscriptEntry};

/// How long an utterance waits for a free recognizer before it is given up.
const RECOGNIZER_PATIENCE: Duration = Duration::from_secs(10);
const RECOGNIZER_RETRY: Duration = Duration::from_millis(100);

pub(super) struct Outcome {
    pub reason: EndReason,
    /// SIP already ended the dialog (BYE either way, max duration); otherwise we must hang up.
    pub dialog_ended: bool,
    pub transcript: Vec<TranscriptEntry>,
    pub quality: Option<serde_json::Value>,
    pub analysis: Option<Analysis>,
}

/// The agent that talks on this call.
pub(super) struct Agent {
    pub script: Script,
    pub voice: String,
    /// The silence that ends the caller's turn (the VAD's hangover on this call).
    pub end_of_turn: Duration,
}

/// A prompt being played out, as its transcript entry.
struct Playing {
    entry: usize,
    until: Instant,
}

/// One recognized utterance, for the transcript and the conversation.
struct Recognized {
    turn: u64,
    utterance: (u64, u64),
    output: Option<TranscriptionOutput>,
}

pub(super) struct Session {
    pub services: Arc<CallServices>,
    pub narrowband: bool,
    pub transcribing: bool,
}

/// A synthesized prompt, tagged with the `Say` it answers.
type Spoken = (u64, String, Option<Arc<[i16]>>);

impl Session {
    pub async fn converse(
        &self,
        mut media: CallHandle,
        sip_events: &mut mpsc::UnboundedReceiver<CallEvent>,
        agent: Option<Agent>,
    ) -> Outcome {
        let started = Instant::now();
        let elapsed_ms = |at: Instant| at.duration_since(started).as_millis() as u64;
        let (done, mut results) = mpsc::unbounded_channel::<Recognized>();
        let (spoken_tx, mut spoken) = mpsc::unbounded_channel::<Spoken>();
        let mut cutter = UtteranceCutter::default();
        // Caller frames start with the first RTP packet; the transcript counts from `started`.
        let mut caller_offset_ms: Option<u64> = None;
        let mut pending = 0usize;
        let mut transcript: Vec<TranscriptEntry> = Vec::new();
        let mut stop = self.services.stop.clone();
        let timeout = self.services.media_config.rtp_timeout_seconds;
        let mut silence = RtpWatch::new((timeout > 0).then(|| Duration::from_secs(timeout)));
        let mut check = tokio::time::interval(silence.check_every());

        let end_of_turn = agent.as_ref().map(|a| a.end_of_turn);
        let voice = agent.as_ref().map(|a| a.voice.clone()).unwrap_or_default();
        let mut conversation = agent.map(|a| Conversation::new(a.script));
        let mut playing: Option<Playing> = None;
        // Each `Say` and `StopSpeaking` bumps this; a synthesis finishing for an older one is
        // stale (the caller barged in meanwhile) and is not played.
        let mut say_generation = 0u64;
        // When the caller's last speech ended, for the turn-latency histogram.
        let mut turn_ended_at: Option<Instant> = None;
        let mut first_prompt = true;
        if let Some(conv) = conversation.as_mut() {
            conv.start(started.into_std());
        }

        let (reason, dialog_ended) = 'call: loop {
            // Act on whatever the last event made the agent decide.
            if let Some(conv) = conversation.as_mut() {
                while let Some(action) = conv.poll_action() {
                    match action {
                        Action::Say(text) => {
                            say_generation += 1;
                            let (tts, voice, tx) =
                                (self.services.tts.clone(), voice.clone(), spoken_tx.clone());
                            let generation = say_generation;
                            tokio::spawn(async move {
                                let audio = match tts.speak(&voice, &text).await {
                                    Ok(audio) => Some(audio),
                                    Err(e) => {
                                        tracing::warn!(error = %e, "speech synthesis failed");
                                        None
                                    }
                                };
                                let _ = tx.send((generation, text, audio));
                            });
                        }
                        Action::StopSpeaking => {
                            say_generation += 1;
                            let _ = media.clear_agent_audio();
                            if let Some(p) = playing.take() {
                                if let Some(entry) = transcript.get_mut(p.entry) {
                                    entry.interrupted = true;
                                    entry.end_ms = elapsed_ms(Instant::now()).max(entry.start_ms);
                                }
                                metrics::counter!("voxbridge_agent_barge_ins_total").increment(1);
                            }
                        }
                        Action::HangUp => break 'call (EndReason::AgentHangup, false),
                    }
                }
            }
            let agent_timer = conversation
                .as_ref()
                .and_then(Conversation::poll_timeout)
                .map(Instant::from_std);
            let wake = match (agent_timer, playing.as_ref().map(|p| p.until)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                event = sip_events.recv() => match event {
                    Some(CallEvent::Ended { reason }) => break (end_reason(&reason), true),
                    Some(CallEvent::MediaUpdated { negotiated }) => {
                        let _ = media.set_remote(negotiated.remote, None);
                        let _ = media.set_sending(sends(negotiated.direction));
                        silence.expect_rtp(receives(negotiated.direction));
                    }
                    Some(_) => {}
                    None => break (EndReason::Error, false),
                },
                event = media.recv() => {
                    let utterance = match event {
                        Some(MediaCallEvent::Audio(frame)) => {
                            caller_offset_ms.get_or_insert_with(|| elapsed_ms(Instant::now()));
                            cutter.frame(&frame.pcm)
                        }
                        Some(MediaCallEvent::Media(MediaEvent::Vad(VadEvent::SpeechStart))) => {
                            cutter.speech_started();
                            turn_ended_at = None;
                            if let Some(conv) = conversation.as_mut() {
                                conv.caller_speaking();
                            }
                            None
                        }
                        Some(MediaCallEvent::Media(MediaEvent::Vad(VadEvent::SpeechEnd))) => {
                            // The VAD reports the end a hangover after the speech stopped.
                            turn_ended_at = Instant::now().checked_sub(end_of_turn.unwrap_or_default());
                            cutter.speech_ended()
                        }
                        Some(MediaCallEvent::Media(MediaEvent::Dtmf(digit))) => {
                            if let Some(conv) = conversation.as_mut() {
                                conv.dtmf(digit.digit, Instant::now().into_std());
                            }
                            None
                        }
                        Some(MediaCallEvent::Media(_)) => None,
                        // The media threads dropped the call: nothing more can be heard.
                        None => break (EndReason::Error, false),
                    };
                    if let Some(utterance) = utterance {
                        let (turn, question) = conversation
                            .as_ref()
                            .map(Conversation::listening)
                            .unwrap_or_default();
                        pending += self.submit(utterance, caller_offset_ms.unwrap_or(0), turn, question, &done);
                    }
                }
                Some(result) = results.recv() => {
                    pending -= 1;
                    let heard = caller_entry(&result).map(|entry| {
                        let text = entry.text.clone();
                        transcript.push(entry);
                        text
                    });
                    if let Some(conv) = conversation.as_mut() {
                        let output = result.output.as_ref();
                        conv.heard(
                            Heard {
                                turn: result.turn,
                                text: heard.unwrap_or_default(),
                                value: output.and_then(|o| o.value.clone()),
                                confidence: output.map_or(0.0, |o| o.confidence),
                            },
                            Instant::now().into_std(),
                        );
                    }
                }
                Some((generation, text, audio)) = spoken.recv() => {
                    if generation != say_generation {
                        continue;
                    }
                    let now = Instant::now();
                    let samples = audio.as_deref().unwrap_or_default();
                    let length = Duration::from_millis(samples.len() as u64 / 16);
                    if !samples.is_empty() && media.push_agent_audio(samples.to_vec()).is_err() {
                        break (EndReason::Error, false);
                    }
                    if first_prompt {
                        first_prompt = false;
                        metrics::histogram!("voxbridge_agent_first_prompt_seconds")
                            .record(now.duration_since(started).as_secs_f64());
                    }
                    if let Some(ended) = turn_ended_at.take() {
                        metrics::histogram!("voxbridge_agent_turn_seconds")
                            .record(now.duration_since(ended).as_secs_f64());
                    }
                    let start_ms = elapsed_ms(now);
                    transcript.push(TranscriptEntry {
                        role: Speaker::Agent,
                        text,
                        start_ms,
                        end_ms: start_ms + length.as_millis() as u64,
                        interrupted: false,
                    });
                    playing = Some(Playing {
                        entry: transcript.len() - 1,
                        until: now + length,
                    });
                }
                () = sleep_until(wake) => {
                    let now = Instant::now();
                    if playing.as_ref().is_some_and(|p| p.until <= now) {
                        playing = None;
                        if let Some(conv) = conversation.as_mut() {
                            conv.playout_done(now.into_std());
                        }
                    }
                    if let Some(conv) = conversation.as_mut() {
                        conv.handle_timeout(now.into_std());
                    }
                }
                // The server is shutting down: our side hangs up.
                () = stopped(&mut stop) => break (EndReason::AgentHangup, false),
                _ = check.tick(), if silence.enabled() => {
                    let received = media.quality().await.map_or(0, |q| q.packets_received);
                    if silence.timed_out(received, Instant::now()) {
                        tracing::info!("no RTP from the caller; hanging up");
                        break (EndReason::Timeout, false);
                    }
                }
            }
        };
        if let Some(p) = playing {
            // Hung up by the caller (or the server) mid-prompt.
            if let Some(entry) = transcript.get_mut(p.entry) {
                if p.until > Instant::now() && reason != EndReason::AgentHangup {
                    entry.interrupted = true;
                    entry.end_ms = elapsed_ms(Instant::now()).max(entry.start_ms);
                }
            }
        }
        let quality = media
            .hangup()
            .await
            .ok()
            .and_then(|q| serde_json::to_value(q).ok());
        if let Some(utterance) = cutter.finish() {
            pending += self.submit(utterance, caller_offset_ms.unwrap_or(0), 0, None, &done);
        }
        // Speech still being recognized belongs to the transcript; wait for it, bounded.
        let give_up = Instant::now() + RECOGNIZER_PATIENCE * 2;
        while pending > 0 {
            match tokio::time::timeout_at(give_up, results.recv()).await {
                Ok(Some(result)) => {
                    pending -= 1;
                    transcript.extend(caller_entry(&result));
                }
                _ => break,
            }
        }
        transcript.sort_by_key(|entry: &TranscriptEntry| entry.start_ms);
        Outcome {
            reason,
            dialog_ended,
            transcript,
            quality,
            analysis: conversation
                .as_ref()
                .map(Conversation::analysis)
                .filter(|a| !a.answers.is_empty()),
        }
    }

    /// Starts recognizing `utterance` as the answer to `question` (free speech without one);
    /// the result arrives on `done`. Returns how many results to expect: 1, since even a call
    /// without transcription reports the turn (as unheard) so the agent can move on.
    fn submit(
        &self,
        utterance: Utterance,
        offset_ms: u64,
        turn: u64,
        question: Option<Question>,
        done: &mpsc::UnboundedSender<Recognized>,
    ) -> usize {
        let (services, done) = (self.services.clone(), done.clone());
        let audio = utterance.model_input(self.narrowband);
        let transcribing = self.transcribing;
        let end_of_speech = Instant::now();
        let span = (utterance.start_ms + offset_ms, utterance.end_ms + offset_ms);
        tokio::spawn(async move {
            let output = match transcribing {
                true => recognize(&services, audio, asr_question(question.as_ref())).await,
                false => None,
            };
            if output.is_some() {
                metrics::histogram!("voxbridge_asr_utterance_seconds")
                    .record(end_of_speech.elapsed().as_secs_f64());
            }
            let _ = done.send(Recognized {
                turn,
                utterance: span,
                output,
            });
        });
        1
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn caller_entry(result: &Recognized) -> Option<TranscriptEntry> {
    let output = result.output.as_ref()?;
    let text = output.text.trim();
    (!text.is_empty()).then(|| TranscriptEntry {
        role: Speaker::Caller,
        text: text.to_string(),
        start_ms: result.utterance.0,
        end_ms: result.utterance.1,
        interrupted: false,
    })
}

/// The recognizer's view of a question: primed with what was asked, typed by its answer type.
fn asr_question(question: Option<&Question>) -> voxbridge_asr::Question {
    let Some(q) = question else {
        return voxbridge_asr::Question::free();
    };
    // Config and API validation admit only types and choices the recognizer accepts.
    match AnswerType::parse(q.kind.as_str(), &q.choices) {
        Ok(answer_type) => voxbridge_asr::Question::asked(&q.ask, answer_type),
        Err(_) => voxbridge_asr::Question::free(),
    }
}

/// The recognition of one utterance, waiting (not queueing inside the pool) while every
/// recognizer is busy. `None` for errors or no recognizer within [`RECOGNIZER_PATIENCE`].
async fn recognize(
    services: &CallServices,
    audio: Vec<f32>,
    question: voxbridge_asr::Question,
) -> Option<TranscriptionOutput> {
    let engine = &services.asr.as_ref()?.engine;
    let give_up = Instant::now() + RECOGNIZER_PATIENCE;
    loop {
        let (tx, rx) = oneshot::channel();
        let submitted = engine.try_transcribe_utterance(audio.clone(), &question, move |result| {
            let _ = tx.send(result);
        });
        match submitted {
            Ok(()) => {
                return match rx.await {
                    Ok(Ok(output)) => Some(output),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "recognizing an utterance failed");
                        None
                    }
                    Err(_) => None,
                };
            }
            Err(AsrError::Busy(_)) if Instant::now() < give_up => {
                tokio::time::sleep(RECOGNIZER_RETRY).await;
            }
            Err(e) => {
                metrics::counter!("voxbridge_asr_utterances_dropped_total").increment(1);
                tracing::warn!(error = %e, "utterance not recognized");
                return None;
            }
        }
    }
}
