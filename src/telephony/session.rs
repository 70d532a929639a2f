//! The conversation on an answered call: the builtin agent's [`Conversation`] driven by the
//! call's media (caller audio cut into utterances and recognized, DTMF, VAD barge-in), its SIP
//! events and the clock; the agent's prompts synthesized and queued for playout. Both sides go
//! into the transcript, timed from the start of the call's media.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;
use voxbridge_asr::{AsrError, Priority, TranscriptionOutput};
use voxbridge_media::pipeline::MediaEvent;
use voxbridge_media::runtime::{CallEvent as MediaCallEvent, CallHandle};
use voxbridge_media::vad::VadEvent;
use voxbridge_sip::endpoint::CallEvent;

use super::talk::{end_reason, receives, sends, RtpWatch};
use super::utterances::{Utterance, UtteranceCutter};
use super::{stopped, CallServices};
use crate::agents::answers;
use crate::agents::conversation::{Action, Conversation, Heard, Script};
use crate::domain::{Analysis, EndReason, Question, Speaker, TranscriptEntry};

/// How long a call that has ended waits for the recognitions of its last utterances before it
/// is stored without them. A queued utterance always comes back (recognized, failed, timed out
/// after 10 s of recognition, or refused by a pool shutting down), and admission keeps the
/// queue short, so this only guards against a recognizer that never answers; it is counted and
/// logged when it fires.
const LAST_WORDS_PATIENCE: Duration = Duration::from_secs(120);

pub(super) struct Outcome {
    pub reason: EndReason,
    /// When the call ended (hang-up either way): its talk time ends here, not when the
    /// recognitions of its last words came back.
    pub ended_at: OffsetDateTime,
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
    /// Set for an early recognition (started at a pause): its job number.
    early: Option<u64>,
    /// An early recognition found every recognizer busy and did not run.
    skipped: bool,
}

/// Early recognition: at a pause in the caller's speech the utterance so far is recognized
/// while the VAD's hangover runs, so a turn costs max(hangover, recognition) rather than their
/// sum. A pause followed by more speech is followed by another pause, so the latest early job
/// is the one that covers the utterance when it ends.
#[derive(Default)]
struct Early {
    next_job: u64,
    /// The latest pause's job, while the caller may still go on; its result if it came.
    open: Option<(u64, Option<Recognized>)>,
    /// Utterances that ended before their early job came back, by job.
    ended: Vec<(u64, Utterance)>,
}

pub(super) struct Session {
    pub services: Arc<CallServices>,
    pub narrowband: bool,
    pub transcribing: bool,
    /// Turns true when our side must hang up: the server is stopping, or (outbound) the call
    /// was canceled.
    pub hang_up: watch::Receiver<bool>,
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
        let mut early = Early::default();
        // Caller frames start with the first RTP packet; the transcript counts from `started`.
        let mut caller_offset_ms: Option<u64> = None;
        let mut pending = 0usize;
        let mut transcript: Vec<TranscriptEntry> = Vec::new();
        let mut hang_up = self.hang_up.clone();
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
                            tracing::debug!(%text, "agent says");
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
                    let offset = caller_offset_ms.unwrap_or(0);
                    let next = match event {
                        Some(MediaCallEvent::Audio(frame)) => {
                            caller_offset_ms.get_or_insert_with(|| elapsed_ms(Instant::now()));
                            // Past 30 s a piece is cut off.
                            cutter.frame(&frame.pcm).map(|piece| early.cut(piece))
                        }
                        Some(MediaCallEvent::Media(MediaEvent::Vad(VadEvent::SpeechStart))) => {
                            cutter.speech_started();
                            turn_ended_at = None;
                            if let Some(conv) = conversation.as_mut() {
                                conv.caller_started();
                            }
                            None
                        }
                        Some(MediaCallEvent::Media(MediaEvent::Vad(VadEvent::Voiced))) => {
                            cutter.voiced();
                            if let Some(conv) = conversation.as_mut() {
                                conv.caller_talking();
                            }
                            None
                        }
                        Some(MediaCallEvent::Media(MediaEvent::Vad(VadEvent::SpeechPause))) => {
                            if let Some(piece) = cutter.paused() {
                                // Long speech is cut between words.
                                Some(early.cut(piece))
                            } else {
                                if let (Some(conv), Some(so_far)) = (conversation.as_ref(), cutter.so_far()) {
                                    let job = early.paused();
                                    pending += self.submit(&so_far, offset, conv.listening(), Submission::Early(job), &done);
                                }
                                None
                            }
                        }
                        Some(MediaCallEvent::Media(MediaEvent::Vad(VadEvent::SpeechEnd))) => {
                            // The VAD reports the end a hangover after the speech stopped.
                            turn_ended_at = Instant::now().checked_sub(end_of_turn.unwrap_or_default());
                            cutter.speech_ended().and_then(|u| early.speech_ended(u, offset))
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
                    pending += self.follow(next, offset, &mut transcript, conversation.as_mut(), &done);
                }
                Some(result) = results.recv() => {
                    pending -= 1;
                    let offset = caller_offset_ms.unwrap_or(0);
                    let next = early.result(result, offset);
                    pending += self.follow(next, offset, &mut transcript, conversation.as_mut(), &done);
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
                // The server is shutting down (or the call was canceled): our side hangs up.
                () = stopped(&mut hang_up) => break (EndReason::AgentHangup, false),
                _ = check.tick(), if silence.enabled() => {
                    let received = media.quality().await.map_or(0, |q| q.packets_received);
                    if silence.timed_out(received, Instant::now()) {
                        tracing::info!("no RTP from the caller; hanging up");
                        break (EndReason::Timeout, false);
                    }
                }
            }
        };
        let ended_at = self.services.store.clock().now();
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
        // Speech still going on or being recognized belongs to the transcript; wait for it,
        // bounded.
        let offset = caller_offset_ms.unwrap_or(0);
        let mut next = cutter.finish().and_then(|u| early.speech_ended(u, offset));
        let give_up = Instant::now() + LAST_WORDS_PATIENCE;
        loop {
            // The agent has stopped listening: what is heard now only goes into the transcript.
            pending += self.follow(next.take(), offset, &mut transcript, None, &done);
            if pending == 0 {
                break;
            }
            match tokio::time::timeout_at(give_up, results.recv()).await {
                Ok(Some(result)) => {
                    pending -= 1;
                    next = early.result(result, offset);
                }
                Ok(None) => break,
                Err(_) => {
                    metrics::counter!("voxbridge_asr_utterances_dropped_total")
                        .increment(pending as u64);
                    tracing::error!(
                        utterances = pending,
                        "stored without the recognitions of its last utterances"
                    );
                    break;
                }
            }
        }
        transcript.sort_by_key(|entry: &TranscriptEntry| entry.start_ms);
        Outcome {
            reason,
            ended_at,
            dialog_ended,
            transcript,
            quality,
            analysis: conversation
                .as_ref()
                .map(Conversation::analysis)
                .filter(|a| !a.answers.is_empty()),
        }
    }

    /// Acts on what an utterance or a recognition calls for: a recognition into the transcript
    /// and to the agent, an utterance to the recognizer (typed by the question being asked).
    /// Returns how many recognitions it started.
    fn follow(
        &self,
        next: Option<Next>,
        offset_ms: u64,
        transcript: &mut Vec<TranscriptEntry>,
        conversation: Option<&mut Conversation>,
        done: &mpsc::UnboundedSender<Recognized>,
    ) -> usize {
        match next {
            Some(Next::Hear(result)) => {
                hear(result, transcript, conversation);
                0
            }
            Some(Next::Recognize(utterance)) if !utterance.voiced => {
                // A click, a cough or a burst of noise: heard as nothing, without a recognition
                // (a noisy line would otherwise cost one per burst).
                metrics::counter!("voxbridge_asr_unvoiced_utterances_total").increment(1);
                let turn = conversation.as_ref().map_or(0, |conv| conv.listening().0);
                let unheard = Recognized {
                    turn,
                    utterance: utterance.span(offset_ms),
                    output: None,
                    early: None,
                    skipped: false,
                };
                hear(unheard, transcript, conversation);
                0
            }
            Some(Next::Recognize(utterance)) => {
                // Nobody waits on a call's words once its agent stopped listening (or on a
                // call without one): they only go into the transcript.
                let (listening, priority) = match conversation {
                    Some(conv) => {
                        let (turn, question) = conv.listening();
                        let priority = match question {
                            Some(_) => Priority::Answer,
                            None => Priority::Turn,
                        };
                        ((turn, question), priority)
                    }
                    None => (Default::default(), Priority::Listen),
                };
                let how = Submission::Queued(priority);
                self.submit(&utterance, offset_ms, listening, how, done)
            }
            None => 0,
        }
    }

    /// Starts recognizing `utterance` as the answer to `question` (free speech without one);
    /// the result arrives on `done`. Returns how many results to expect: 1, since even a call
    /// without transcription reports the turn (as unheard) so the agent can move on.
    fn submit(
        &self,
        utterance: &Utterance,
        offset_ms: u64,
        (turn, question): (u64, Option<Question>),
        how: Submission,
        done: &mpsc::UnboundedSender<Recognized>,
    ) -> usize {
        let (services, done) = (self.services.clone(), done.clone());
        let audio = utterance.model_input(self.narrowband);
        let transcribing = self.transcribing;
        let end_of_speech = Instant::now();
        let span = utterance.span(offset_ms);
        let (early, priority) = match how {
            Submission::Early(job) => (Some(job), None),
            Submission::Queued(priority) => (None, Some(priority)),
        };
        let recognition = async move {
            let question = answers::recognizer_question(question.as_ref());
            let (output, skipped) = match transcribing {
                true => match recognize(&services, audio, question, priority).await {
                    Ok(output) => (output, false),
                    Err(Busy) => (None, true),
                },
                false => (None, false),
            };
            if output.is_some() && early.is_none() {
                metrics::histogram!("voxbridge_asr_utterance_seconds")
                    .record(end_of_speech.elapsed().as_secs_f64());
            }
            let _ = done.send(Recognized {
                turn,
                utterance: span,
                output,
                early,
                skipped,
            });
        };
        tokio::spawn(recognition.in_current_span());
        1
    }
}

/// How an utterance is recognized.
#[derive(Debug, Clone, Copy)]
enum Submission {
    /// An early recognition (its job number): only on a recognizer free now, since it must
    /// not delay the utterances of other calls.
    Early(u64),
    /// In the recognizers' queue, at this priority.
    Queued(Priority),
}

/// What to do with an utterance or a recognition.
enum Next {
    /// Recognized: into the transcript and to the agent.
    Hear(Recognized),
    /// Recognize it (again).
    Recognize(Utterance),
}

impl Early {
    /// A piece was cut out of speech that goes on: the open pause's job covers less than the
    /// piece, so the piece is recognized as it is.
    fn cut(&mut self, piece: Utterance) -> Next {
        self.open = None;
        Next::Recognize(piece)
    }

    /// The caller paused: a new early job, which replaces the previous one (speech resumed).
    fn paused(&mut self) -> u64 {
        self.next_job += 1;
        self.open = Some((self.next_job, None));
        self.next_job
    }

    /// The VAD ended `utterance`: heard already if the pause's job is back, or recognized
    /// anew if that job could not run (or there was none).
    fn speech_ended(&mut self, utterance: Utterance, offset_ms: u64) -> Option<Next> {
        match self.open.take() {
            Some((job, None)) => {
                self.ended.push((job, utterance));
                None
            }
            Some((_, Some(result))) if !result.skipped => {
                Some(Next::Hear(result.spanning(&utterance, offset_ms)))
            }
            _ => Some(Next::Recognize(utterance)),
        }
    }

    /// A recognition came back: an ordinary one is heard; an early one is kept until its
    /// utterance ends, heard if it already has, dropped if speech went on after its pause.
    fn result(&mut self, result: Recognized, offset_ms: u64) -> Option<Next> {
        let Some(job) = result.early else {
            return Some(Next::Hear(result));
        };
        if let Some((_, slot)) = self.open.as_mut().filter(|(open, _)| *open == job) {
            *slot = Some(result);
            return None;
        }
        let at = self.ended.iter().position(|(ended, _)| *ended == job)?;
        let (_, utterance) = self.ended.swap_remove(at);
        Some(match result.skipped {
            true => Next::Recognize(utterance),
            false => Next::Hear(result.spanning(&utterance, offset_ms)),
        })
    }
}

impl Recognized {
    /// This recognition as that of the whole `utterance` (its end includes the hangover).
    fn spanning(self, utterance: &Utterance, offset_ms: u64) -> Self {
        Recognized {
            utterance: utterance.span(offset_ms),
            ..self
        }
    }
}

/// A recognized utterance goes into the transcript and to the agent.
fn hear(
    result: Recognized,
    transcript: &mut Vec<TranscriptEntry>,
    conversation: Option<&mut Conversation>,
) {
    let heard = caller_entry(&result).map(|entry| {
        let text = entry.text.clone();
        transcript.push(entry);
        text
    });
    if let Some(conv) = conversation {
        let output = result.output.as_ref();
        tracing::debug!(text = ?heard, value = ?output.and_then(|o| o.value.as_ref()), confidence = output.map(|o| o.confidence), "caller heard");
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

/// No recognizer was free for an early recognition (it runs only on a free one).
struct Busy;

/// The recognition of one utterance: queued at `priority` behind other calls' utterances, or
/// for an early recognition (`priority` `None`) only on a recognizer that is free now.
/// `Ok(None)` for errors.
async fn recognize(
    services: &CallServices,
    audio: Vec<f32>,
    question: voxbridge_asr::Question,
    priority: Option<Priority>,
) -> Result<Option<TranscriptionOutput>, Busy> {
    let Some(asr) = services.asr.as_ref() else {
        return Ok(None);
    };
    let engine = &asr.engine;
    let (tx, rx) = oneshot::channel();
    let done = move |result| {
        let _ = tx.send(result);
    };
    let submitted = match priority {
        Some(priority) => engine.transcribe_utterance(audio, &question, priority, done),
        None => engine.try_transcribe_utterance(audio, &question, done),
    };
    match submitted {
        Ok(()) => Ok(match rx.await {
            Ok(Ok(output)) => {
                if priority.is_some() {
                    metrics::histogram!("voxbridge_asr_queue_wait_seconds")
                        .record(output.queue_wait.as_secs_f64());
                }
                Some(output)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "recognizing an utterance failed");
                None
            }
            Err(_) => None,
        }),
        Err(AsrError::Busy(_)) if priority.is_none() => Err(Busy),
        Err(e) => {
            metrics::counter!("voxbridge_asr_utterances_dropped_total").increment(1);
            tracing::warn!(error = %e, "utterance not recognized");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utterance(start_ms: u64, end_ms: u64) -> Utterance {
        Utterance {
            start_ms,
            end_ms,
            pcm: vec![1; 320],
            voiced: true,
        }
    }

    fn done(job: u64, skipped: bool) -> Recognized {
        Recognized {
            turn: 1,
            utterance: (0, 0),
            output: None,
            early: Some(job),
            skipped,
        }
    }

    fn heard_span(next: Option<Next>) -> Option<(u64, u64)> {
        match next {
            Some(Next::Hear(r)) => Some(r.utterance),
            _ => None,
        }
    }

    #[test]
    fn an_early_result_answers_the_utterance_whichever_comes_first() {
        let mut early = Early::default();
        // The result is back before the hangover ends.
        let job = early.paused();
        assert!(early.result(done(job, false), 100).is_none());
        let next = early.speech_ended(utterance(1000, 2400), 100);
        assert_eq!(heard_span(next), Some((1100, 2500)));
        // The hangover ends first; the result is heard when it comes.
        let job = early.paused();
        assert!(early.speech_ended(utterance(3000, 3900), 100).is_none());
        assert_eq!(
            heard_span(early.result(done(job, false), 100)),
            Some((3100, 4000))
        );
    }

    #[test]
    fn speech_after_a_pause_drops_that_pause_s_result() {
        let mut early = Early::default();
        let first = early.paused();
        let second = early.paused();
        assert!(early.result(done(first, false), 0).is_none(), "stale");
        assert!(early.speech_ended(utterance(0, 900), 0).is_none());
        assert_eq!(
            heard_span(early.result(done(second, false), 0)),
            Some((0, 900))
        );
    }

    #[test]
    fn an_early_job_that_found_no_recognizer_is_recognized_at_the_end() {
        let mut early = Early::default();
        let job = early.paused();
        assert!(early.speech_ended(utterance(0, 900), 0).is_none());
        assert!(matches!(
            early.result(done(job, true), 0),
            Some(Next::Recognize(u)) if u.end_ms == 900
        ));
        // Without a pause (speech cut at 30 s), the end is recognized as usual.
        assert!(matches!(
            early.speech_ended(utterance(0, 500), 0),
            Some(Next::Recognize(_))
        ));
    }
}
