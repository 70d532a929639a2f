//! The builtin agent on answered inbound calls, end to end: SIPp (a separate process) dials
//! `voxbridge serve` over loopback, hears the agent (its RTP captured off loopback with
//! dumpcap and transcribed by our own recognizer), answers by voice (recorded telephone speech)
//! or on the keypad (RFC 4733), and the call is stored with both sides of the transcript and
//! its answers, announced by `call.ended` then `call.analyzed`.
//!
//! SIPp cannot react to what it hears, so each caller's audio is laid out in time from the
//! lengths of the agent's prompts, synthesized here with the same voice the server uses.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};

use common::audio::{fixture_ulaw, path, sox, ULAW_RAW};
use common::caller_rtp::CallerRtp;
use common::{Db, TestApp};
use serde_json::{json, Value};
use voxbridge::config::{AgentConfig, Config};
use voxbridge::domain::{Question, QuestionType};

on_both_databases!(a_yes_said_to_the_agent_is_heard_stored_and_analyzed);

const VOICE: &str = "calm_support";
const GREETING: &str = "Good morning, you have reached customer support.";
const BOOK: &str = "Shall I book the appointment for you?";
const DEPARTMENT: &str = "Which department do you need: billing, technical support, or sales?";
const CLOSING: &str = "Thank you. Goodbye.";

fn question(key: &str, ask: &str, kind: QuestionType, choices: &[&str]) -> Question {
    Question {
        choices: choices.iter().map(|c| c.to_string()).collect(),
        ..Question::new(key, ask, kind)
    }
}

/// A choice ("billing", "technical support", "sales"), then a yes/no.
fn department_then_book() -> Vec<Question> {
    let choices = ["billing", "technical support", "sales"];
    vec![
        question("department", DEPARTMENT, QuestionType::Choice, &choices),
        question("book", BOOK, QuestionType::YesNo, &[]),
    ]
}

/// Each test's server sends RTP from a port range of its own, so a capture filtered on it
/// holds that call's agent audio only (tests run in parallel).
fn rtp_ports() -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(44_000);
    let min = NEXT.fetch_add(20, Ordering::Relaxed);
    (min, min + 19)
}

/// A server whose inbound agent runs `questions` (then [`CLOSING`]), with `tweak` for the
/// agent's turn settings, sending RTP from `ports`.
async fn start(
    db: Db,
    webhook_url: Option<&str>,
    ports: (u16, u16),
    questions: Vec<Question>,
    tweak: impl FnOnce(&mut AgentConfig) + Send + 'static,
) -> TestApp {
    TestApp::start_with(
        db,
        webhook_url,
        move |c: &mut Config| {
            c.trunks.push(common::loopback_trunk("127.0.0.1/32"));
            common::transcribe(c);
            (c.media.rtp_port_min, c.media.rtp_port_max) = ports;
            let agent = c.orgs[0]
                .agents
                .iter_mut()
                .find(|a| a.slug == "inbound-support")
                .expect("the inbound agent");
            agent.greeting = Some(GREETING.into());
            agent.questions = questions;
            agent.closing = Some(CLOSING.into());
            tweak(agent);
        },
        None,
    )
    .await
}

/// How long the agent's voice takes to say `text`, in ms.
async fn spoken_ms(text: &str) -> u64 {
    common::audio::spoken_ms(VOICE, text).await
}

/// Part of what the caller does once the call is answered, in order on one RTP stream.
enum Caller<'a> {
    Silence {
        ms: u64,
    },
    /// Steady room noise (pink, about -30 dBFS): nobody speaks, but the line is not quiet.
    Noise {
        ms: u64,
    },
    /// A loud burst of noise that dies away, like a cough or a bump of the handset.
    Burst {
        ms: u64,
    },
    /// A recorded telephone fixture (`fixtures/asr/`).
    Say {
        clip: &'a str,
    },
    /// A pause then one key press (RFC 4733, in the same stream).
    Key {
        after_ms: u64,
        digit: char,
    },
    /// A pause then the caller hangs up (BYE) instead of waiting for the agent's.
    HangUp {
        after_ms: u64,
    },
}

/// The agent hangs up: answer its BYE.
const AWAIT_BYE: &str = include_str!("sipp/await_bye.xml");
/// The caller hangs up.
const SEND_BYE: &str = include_str!("sipp/send_bye.xml");

/// The scenario for `parts`: their RTP laid out in one capture under `dir`, which SIPp replays
/// from the port its SDP offers.
fn scenario(dir: &Path, parts: &[Caller]) -> String {
    let mut rtp = CallerRtp::default();
    let mut hang_up_at = None;
    for (i, part) in parts.iter().enumerate() {
        let out = dir.join(format!("{i}.ul"));
        let synth = |ms: u64, what: &[&str]| {
            let seconds = format!("{:.3}", ms as f64 / 1000.0);
            let head = [&["-n"][..], &ULAW_RAW[..], &[path(&out), "synth", &seconds]].concat();
            sox(&[&head[..], what].concat());
            std::fs::read(&out).expect("sox output")
        };
        match part {
            Caller::Silence { ms } => rtp.silence(*ms),
            Caller::Noise { ms } => rtp.audio(&synth(*ms, &["pinknoise", "vol", "0.03"])),
            Caller::Burst { ms } => rtp.audio(&synth(
                *ms,
                &[
                    "whitenoise",
                    "vol",
                    "0.6",
                    "fade",
                    "q",
                    "0.01",
                    "-0",
                    &format!("{:.3}", *ms as f64 / 1000.0 * 0.8),
                ],
            )),
            Caller::Say { clip } => rtp.audio(&fixture_ulaw(clip, &out)),
            Caller::Key { after_ms, digit } => {
                rtp.silence(*after_ms);
                rtp.key(*digit);
            }
            Caller::HangUp { after_ms } => hang_up_at = Some(rtp.ms() + after_ms),
        }
    }
    let pcap = dir.join("caller.pcap");
    rtp.write_pcap(&pcap);
    let mut actions = format!(
        "<nop><action><exec play_pcap_audio=\"{}\"/></action></nop>\n",
        pcap.display()
    );
    let end = match hang_up_at {
        Some(ms) => {
            actions.push_str(&format!("<pause milliseconds=\"{ms}\"/>\n"));
            SEND_BYE
        }
        None => AWAIT_BYE,
    };
    include_str!("sipp/agent_call.xml")
        .replace("@CALLER@", &actions)
        .replace("@END@", end)
        .replace("@PORT@", "[media_port]")
}

/// Runs one SIPp call to the demo DID; true when it passed.
async fn call(app: &TestApp, scenario: String) -> bool {
    let sip = app.server.as_ref().expect("running").sip_addr;
    let media = common::sipp::media_port().to_string();
    tokio::task::spawn_blocking(move || {
        let args = [
            "-s",
            "+12025550142",
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-mp",
            &media,
        ];
        common::sipp::run(sip, &scenario, &args)
    })
    .await
    .expect("SIPp thread")
}

/// Runs the call and returns it once stored `completed`; SIPp's failure shows the call.
async fn completed(app: &TestApp, scenario: String) -> Value {
    if !call(app, scenario).await {
        let (_, calls) = app
            .get("/v1/calls?direction=inbound", common::ACME_KEY)
            .await;
        panic!("SIPp failed; the call: {:#}", calls["data"][0]);
    }
    completed_call(app).await
}

/// The newest inbound call, once stored `completed`.
async fn completed_call(app: &TestApp) -> Value {
    common::eventually(30, "the call to be completed", || async {
        let (_, body) = app
            .get("/v1/calls?direction=inbound", common::ACME_KEY)
            .await;
        body["data"]
            .as_array()
            .and_then(|calls| calls.first())
            .filter(|c| c["status"] == "completed")
            .cloned()
    })
    .await
}

/// The event types stored for `call`, in order.
async fn events(app: &TestApp, call: &Value) -> Vec<String> {
    let id = uuid::Uuid::parse_str(call["id"].as_str().unwrap()).unwrap();
    let events = app.store().call_events(id).await.unwrap();
    events.into_iter().map(|(kind, _, _)| kind).collect()
}

/// Who spoke, in transcript order; checks the entries are in time order.
fn speakers(call: &Value) -> Vec<(String, String)> {
    let transcript = call["transcript"].as_array().expect("a transcript");
    let starts: Vec<u64> = transcript
        .iter()
        .map(|t| t["start_ms"].as_u64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{transcript:#?}");
    transcript
        .iter()
        .map(|t| {
            let role = t["role"].as_str().unwrap().to_string();
            (role, t["text"].as_str().unwrap().to_lowercase())
        })
        .collect()
}

/// dumpcap on loopback, keeping the UDP our server sends from its RTP ports.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(dir: &Path, (min, max): (u16, u16)) -> Self {
        let file = dir.join("agent.pcap");
        let filter = format!("udp src portrange {min}-{max}");
        let mut child = Command::new("dumpcap")
            .args(["-i", "lo", "-P", "-q", "-f", &filter, "-w", path(&file)])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run dumpcap (apt-get install tshark)");
        // It says so once the capture is open: only then can the call start.
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("Capturing on"));
        assert!(
            ready,
            "dumpcap could not capture on lo (needs root or CAP_NET_RAW)"
        );
        std::thread::spawn(move || lines.for_each(drop));
        Capture { child, file }
    }

    /// Stops the capture and returns the PCMU audio received, decoded, in sequence order.
    fn stop(mut self) -> Vec<i16> {
        // SIGINT: dumpcap flushes the file and exits.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        let bytes = std::fs::read(&self.file).expect("the capture file");
        let mut packets: Vec<(u16, Vec<u8>)> = udp_payloads(&bytes)
            .into_iter()
            .filter_map(|p| pcmu_payload(&p))
            .collect();
        packets.sort_by_key(|(seq, _)| *seq);
        packets
            .iter()
            .flat_map(|(_, payload)| {
                payload
                    .iter()
                    .map(|&b| voxbridge_media::codec::ulaw_to_linear(b))
            })
            .collect()
    }
}

/// The UDP payloads of an Ethernet-framed IPv4 pcap (what dumpcap writes for `lo`).
fn udp_payloads(pcap: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    assert_eq!(
        u32::from_le_bytes(pcap[20..24].try_into().unwrap()),
        1,
        "Ethernet link type"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..(at + 16 + len).min(pcap.len())];
        at += 16 + len;
        let Some(ip) = frame.get(14..) else { continue };
        if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
            continue;
        }
        let header = usize::from(ip[0] & 0x0f) * 4;
        if let Some(udp) = ip.get(header + 8..) {
            out.push(udp.to_vec());
        }
    }
    out
}

/// Sequence number and payload of an RTP packet carrying PCMU (payload type 0).
fn pcmu_payload(rtp: &[u8]) -> Option<(u16, Vec<u8>)> {
    if rtp.len() < 12 || rtp[0] >> 6 != 2 || rtp[1] & 0x7f != 0 {
        return None;
    }
    let header = 12 + usize::from(rtp[0] & 0x0f) * 4;
    Some((
        u16::from_be_bytes([rtp[2], rtp[3]]),
        rtp.get(header..)?.to_vec(),
    ))
}

/// What our recognizer makes of 8 kHz audio.
fn transcribe(samples: Vec<i16>) -> String {
    let engine = voxbridge_asr::engine::SpeechEngine::load(voxbridge_asr::engine::AsrConfig {
        timeout: std::time::Duration::from_secs(60),
        ..voxbridge_asr::engine::AsrConfig::new(common::asr_model())
    })
    .expect("the model loads");
    let pcm = voxbridge_asr::wav::Pcm {
        rate: voxbridge_asr::wav::SampleRate::Hz8000,
        samples,
    };
    engine
        .transcribe_pcm(&pcm, &voxbridge_asr::engine::Question::free())
        .expect("recognized")
        .text
        .to_lowercase()
}

/// The greeting and a yes/no question; the caller says "Yes." once the question has played.
/// What SIPp received, transcribed, holds the agent's words; the answer is stored `true`.
async fn a_yes_said_to_the_agent_is_heard_stored_and_analyzed(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let ports = rtp_ports();
    let questions = vec![question("book", BOOK, QuestionType::YesNo, &[])];
    let hooks = common::receiver::Receiver::start().await;
    let app = start(db, Some(&hooks.url), ports, questions, |_| {}).await;
    let after_ms = spoken_ms(GREETING).await + spoken_ms(BOOK).await + 700;
    let parts = [
        Caller::Silence { ms: after_ms },
        Caller::Say {
            clip: "yes_no_01.wav",
        },
    ];
    let scenario = scenario(dir.path(), &parts);
    let capture = Capture::start(dir.path(), ports);
    assert!(call(&app, scenario).await, "the agent hung up with BYE");
    let audio = capture.stop();
    let heard = transcribe(audio);

    let call = completed_call(&app).await;
    assert_eq!(call["end_reason"], "agent_hangup", "{call:#}");
    assert_eq!(
        call["analysis"]["answers"],
        json!({"book": true}),
        "{call:#}"
    );
    assert_eq!(call["analysis"]["answer_method"]["book"], "speech");
    let said = speakers(&call);
    let roles: Vec<&str> = said.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(roles, ["agent", "agent", "caller", "agent"], "{said:?}");
    assert!(said[2].1.contains("yes"), "{said:?}");
    assert_eq!(said[0].1, GREETING.to_lowercase());

    // The agent's audio as the caller got it carries what it meant to say (tiny.en mishears
    // some of espeak-ng's words, so most, not all, must come back).
    let words = ["morning", "customer", "support", "appointment"];
    let found = words.iter().filter(|w| heard.contains(*w)).count();
    assert!(found >= 3, "the caller heard: {heard:?}");

    // Delivered: call.ended with both sides, then call.analyzed with the answers.
    let hooks: Vec<Value> = hooks
        .wait_for(3, 20)
        .await
        .iter()
        .map(|h| h.json())
        .collect();
    let kinds: Vec<&str> = hooks.iter().filter_map(|h| h["type"].as_str()).collect();
    assert_eq!(kinds, ["call.answered", "call.ended", "call.analyzed"]);
    let (ended, analyzed) = (&hooks[1]["data"], &hooks[2]["data"]);
    assert_eq!(ended["transcript"], call["transcript"]);
    assert_eq!(ended["end_reason"], "agent_hangup");
    assert!(ended["quality"]["mos"].as_f64().is_some(), "{ended:#}");
    assert_eq!(analyzed["analysis"], call["analysis"], "{analyzed:#}");
    app.stop().await;
}

/// Keys answer at any time: "2" picks the second choice while the question is still playing,
/// and "2" on a yes/no is no.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypad_answers_a_choice_by_position_and_a_yes_no_with_2() {
    let dir = tempfile::tempdir().unwrap();
    let ports = rtp_ports();
    let app = start(Db::Sqlite, None, ports, department_then_book(), |_| {}).await;
    // The first key interrupts the department question halfway through.
    let first = spoken_ms(GREETING).await + spoken_ms(DEPARTMENT).await / 2;
    let second = spoken_ms(BOOK).await + 600;
    let parts = [
        Caller::Key {
            after_ms: first,
            digit: '2',
        },
        Caller::Key {
            after_ms: second,
            digit: '2',
        },
    ];
    assert!(
        call(&app, scenario(dir.path(), &parts)).await,
        "the agent hung up with BYE"
    );

    let call = completed_call(&app).await;
    assert_eq!(call["end_reason"], "agent_hangup", "{call:#}");
    let analysis = &call["analysis"];
    assert_eq!(
        analysis["answers"],
        json!({"department": "technical support", "book": false}),
        "{call:#}"
    );
    assert_eq!(
        analysis["answer_text"],
        json!({"department": "2", "book": "2"})
    );
    assert_eq!(
        analysis["answer_method"],
        json!({"department": "dtmf", "book": "dtmf"})
    );
    let said = speakers(&call);
    let department = said
        .iter()
        .find(|(_, t)| t.contains("department"))
        .expect("asked");
    let entry = call["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["text"].as_str().unwrap().contains("department"))
        .unwrap();
    assert_eq!(
        entry["interrupted"], true,
        "{department:?} was cut short by the key"
    );
    app.stop().await;
}

/// A caller who says nothing (a muted line, or only room noise) is asked again once, then the
/// question is left unanswered and the agent closes the call itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_is_asked_again_then_left_unanswered() {
    no_input(Caller::Silence { ms: 20_000 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_noise_is_asked_again_then_left_unanswered() {
    no_input(Caller::Noise { ms: 20_000 }).await;
}

async fn no_input(caller: Caller<'_>) {
    let dir = tempfile::tempdir().unwrap();
    let ports = rtp_ports();
    let questions = vec![question("book", BOOK, QuestionType::YesNo, &[])];
    let app = start(Db::Sqlite, None, ports, questions, |agent| {
        agent.no_input_ms = Some(1500)
    })
    .await;
    // RTP flows all along; nobody speaks.
    let parts = [caller];
    assert!(
        call(&app, scenario(dir.path(), &parts)).await,
        "the agent hung up with BYE"
    );

    let call = completed_call(&app).await;
    assert_eq!(call["end_reason"], "agent_hangup", "{call:#}");
    assert_eq!(
        call["analysis"]["answers"],
        json!({"book": null}),
        "{call:#}"
    );
    let said = speakers(&call);
    let asked = said
        .iter()
        .filter(|(_, t)| t.contains("appointment"))
        .count();
    assert_eq!(asked, 2, "asked, then asked again: {said:?}");
    assert!(said.iter().all(|(r, _)| r == "agent"), "{said:?}");
    assert!(
        said.last().is_some_and(|(_, t)| t.contains("goodbye")),
        "{said:?}"
    );
    let events = events(&app, &call).await;
    assert_eq!(events, ["call.answered", "call.ended", "call.analyzed"]);
    app.stop().await;
}

/// The caller hangs up while the second question is playing: playout stops there, and the
/// call still ends with its first answer analyzed and the second null.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_hanging_up_mid_prompt_keeps_what_was_answered() {
    let dir = tempfile::tempdir().unwrap();
    let ports = rtp_ports();
    let app = start(Db::Sqlite, None, ports, department_then_book(), |_| {}).await;
    let book_ms = spoken_ms(BOOK).await;
    let first = spoken_ms(GREETING).await + spoken_ms(DEPARTMENT).await + 300;
    // Hang up halfway through the next question, which starts as the key ends.
    let parts = [
        Caller::Key {
            after_ms: first,
            digit: '1',
        },
        Caller::HangUp {
            after_ms: 700 + book_ms / 2,
        },
    ];
    assert!(
        call(&app, scenario(dir.path(), &parts)).await,
        "the caller hung up"
    );

    let call = completed_call(&app).await;
    assert_eq!(call["end_reason"], "caller_hangup", "{call:#}");
    assert_eq!(
        call["analysis"]["answers"],
        json!({"department": "billing", "book": null}),
        "{call:#}"
    );
    let transcript = call["transcript"].as_array().unwrap();
    let last = transcript.last().unwrap();
    assert_eq!(last["text"], BOOK, "{transcript:#?}");
    assert_eq!(last["interrupted"], true, "{last:#}");
    let played = last["end_ms"].as_u64().unwrap() - last["start_ms"].as_u64().unwrap();
    assert!(played < book_ms, "played {played} of {book_ms} ms");
    let events = events(&app, &call).await;
    assert_eq!(events, ["call.answered", "call.ended", "call.analyzed"]);
    app.stop().await;
}

const ACCOUNT: &str = "What is your account number?";
const WHEN: &str = "What date would you like the appointment?";
const PAY: &str = "How much would you like to pay?";
/// The caller's turn ends 400 ms after they stop; recognition may take a second or more on a
/// loaded test machine.
const THINK_MS: u64 = 400 + 1500;

/// The agent's read-back of `heard`, as it says it.
fn read_back(heard: &str) -> String {
    format!("I heard {heard}. Is that right?")
}

/// The caller answers with `clip` once `prompt_ms` of the agent's speech has played, then
/// says `reply` once the read-back `read_back` has.
async fn answer_then_reply<'a>(
    prompt_ms: u64,
    clip: &'a str,
    read_back: &str,
    reply: &'a str,
) -> Vec<Caller<'a>> {
    vec![
        Caller::Silence { ms: prompt_ms },
        Caller::Say { clip },
        Caller::Silence {
            ms: THINK_MS + spoken_ms(read_back).await + 500,
        },
        Caller::Say { clip: reply },
    ]
}

/// The agent's prompts in the transcript, as (text, interrupted).
fn agent_prompts(call: &Value) -> Vec<(String, bool)> {
    call["transcript"]
        .as_array()
        .expect("a transcript")
        .iter()
        .filter(|t| t["role"] == "agent")
        .map(|t| {
            let text = t["text"].as_str().unwrap().to_string();
            (text, t["interrupted"] == true)
        })
        .collect()
}

/// An account number said, read back, and confirmed with "Yes.": stored as heard, marked as
/// confirmed by read-back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_said_are_read_back_and_kept_when_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let ports = rtp_ports();
    let questions = vec![question("account", ACCOUNT, QuestionType::Digits, &[])];
    let app = start(Db::Sqlite, None, ports, questions, |_| {}).await;
    let confirm = read_back("8 8 4 2");
    let asked_ms = spoken_ms(GREETING).await + spoken_ms(ACCOUNT).await + 700;
    let parts = answer_then_reply(asked_ms, "digits_05.wav", &confirm, "yes_no_01.wav").await;
    let call = completed(&app, scenario(dir.path(), &parts)).await;
    let analysis = &call["analysis"];
    assert_eq!(analysis["answers"], json!({"account": "8842"}), "{call:#}");
    assert_eq!(analysis["answer_method"]["account"], "read_back_confirmed");
    let prompts = agent_prompts(&call);
    assert!(prompts.iter().any(|(t, _)| *t == confirm), "{prompts:?}");
    app.stop().await;
}

/// A date and an amount, each read back in words and confirmed by voice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_date_and_an_amount_are_read_back_and_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let ports = rtp_ports();
    let questions = vec![
        question("day", WHEN, QuestionType::Date, &[]),
        question("total", PAY, QuestionType::Amount, &[]),
    ];
    let app = start(Db::Sqlite, None, ports, questions, |_| {}).await;
    // "December first, twenty twenty five."
    let day = time::macros::date!(2025 - 12 - 01);
    let day_read_back = read_back("December 1, 2025");
    let total_read_back = read_back("50 dollars");
    let when_ms = spoken_ms(GREETING).await + spoken_ms(WHEN).await + 700;
    let pay_ms = THINK_MS + spoken_ms(PAY).await + 500;
    let mut parts =
        answer_then_reply(when_ms, "date_04.wav", &day_read_back, "yes_no_01.wav").await;
    parts.extend(
        answer_then_reply(pay_ms, "amount_01.wav", &total_read_back, "yes_no_03.wav").await,
    );
    let call = completed(&app, scenario(dir.path(), &parts)).await;
    let analysis = &call["analysis"];
    assert_eq!(
        analysis["answers"],
        json!({"day": day.to_string(), "total": {"value": "50.00", "currency": "USD"}}),
        "{call:#}"
    );
    assert_eq!(
        analysis["answer_method"],
        json!({"day": "read_back_confirmed", "total": "read_back_confirmed"})
    );
    let prompts = agent_prompts(&call);
    for said in [&day_read_back, &total_read_back] {
        assert!(
            prompts.iter().any(|(t, _)| t == said),
            "{said}: {prompts:?}"
        );
    }
    app.stop().await;
}

/// "No." to the read-back: the agent asks for the keypad, and the keyed number (a different
/// one) is what is stored, marked as keyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_read_back_takes_the_keyed_value() {
    let dir = tempfile::tempdir().unwrap();
    let ports = rtp_ports();
    let questions = vec![question("account", ACCOUNT, QuestionType::Digits, &[])];
    let app = start(Db::Sqlite, None, ports, questions, |_| {}).await;
    // Heard as 1 2 3 4 9 6 on this path (tiny.en drops the five): a wrong read-back is what a
    // caller says no to.
    let confirm = read_back("1 2 3 4 9 6");
    let asked_ms = spoken_ms(GREETING).await + spoken_ms(ACCOUNT).await + 700;
    let mut parts = answer_then_reply(asked_ms, "digits_04.wav", &confirm, "yes_no_02.wav").await;
    // Keyed while the keypad instruction plays (the first key cuts it off).
    for (i, digit) in "48271936#".chars().enumerate() {
        let after_ms = if i == 0 { THINK_MS + 1000 } else { 100 };
        parts.push(Caller::Key { after_ms, digit });
    }
    let call = completed(&app, scenario(dir.path(), &parts)).await;
    let analysis = &call["analysis"];
    assert_eq!(
        analysis["answers"],
        json!({"account": "48271936"}),
        "{call:#}"
    );
    assert_eq!(analysis["answer_method"]["account"], "dtmf");
    assert_eq!(analysis["answer_text"]["account"], "48271936");
    let prompts = agent_prompts(&call);
    assert!(prompts.iter().any(|(t, _)| *t == confirm), "{prompts:?}");
    assert!(
        prompts.iter().any(|(t, cut)| t.contains("keypad") && *cut),
        "the keypad prompt, cut off by the first key: {prompts:?}"
    );
    app.stop().await;
}

/// The caller talks over the greeting: its playout stops within a moment of the caller's
/// first words (measured on the wire), the transcript marks it interrupted, and the agent
/// goes on to its question.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talking_over_the_greeting_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let ports = rtp_ports();
    let questions = vec![question("book", BOOK, QuestionType::YesNo, &[])];
    let app = start(Db::Sqlite, None, ports, questions, |_| {}).await;
    let parts = [
        Caller::Silence { ms: 1200 },
        Caller::Say {
            clip: "free_01.wav",
        },
        Caller::Silence {
            ms: THINK_MS + spoken_ms(BOOK).await + 500,
        },
        Caller::Say {
            clip: "yes_no_01.wav",
        },
    ];
    let capture = Capture::start(dir.path(), ports);
    assert!(
        call(&app, scenario(dir.path(), &parts)).await,
        "the agent hung up with BYE"
    );
    let agent_audio = capture.stop();

    let call = completed_call(&app).await;
    let prompts = agent_prompts(&call);
    assert_eq!(prompts[0], (GREETING.to_string(), true), "{prompts:?}");
    let greeting = &call["transcript"][0];
    let played = greeting["end_ms"].as_u64().unwrap() - greeting["start_ms"].as_u64().unwrap();
    let full = spoken_ms(GREETING).await;
    assert!(played < 2000, "played {played} of {full} ms");
    assert_eq!(
        call["analysis"]["answers"],
        json!({"book": true}),
        "{call:#}"
    );
    // On the wire: the greeting's audio stops well before its end, then the question follows.
    let talk = talk_spurts(&agent_audio);
    assert!(talk.len() >= 3, "greeting, question, closing: {talk:?}");
    assert!(talk[0].1 - talk[0].0 < 2000, "greeting spurt {talk:?}");
    app.stop().await;
}

/// Noise bursts (a cough, a bump) while the agent talks are not speech: the prompt plays on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_bursts_do_not_cut_the_agent_off() {
    let dir = tempfile::tempdir().unwrap();
    let ports = rtp_ports();
    let questions = vec![question("book", BOOK, QuestionType::YesNo, &[])];
    let app = start(Db::Sqlite, None, ports, questions, |_| {}).await;
    let after = spoken_ms(GREETING).await + spoken_ms(BOOK).await + 700;
    let parts = [
        Caller::Silence { ms: 800 },
        Caller::Burst { ms: 250 },
        Caller::Silence { ms: 700 },
        Caller::Burst { ms: 400 },
        Caller::Silence {
            ms: after - 800 - 250 - 700 - 400,
        },
        Caller::Say {
            clip: "yes_no_01.wav",
        },
    ];
    let call = completed(&app, scenario(dir.path(), &parts)).await;
    let prompts = agent_prompts(&call);
    assert!(
        prompts.iter().all(|(_, cut)| !cut),
        "nothing interrupted: {prompts:?}"
    );
    assert_eq!(prompts[0].0, GREETING);
    assert_eq!(
        call["analysis"]["answers"],
        json!({"book": true}),
        "{call:#}"
    );
    app.stop().await;
}

/// The stretches of `audio` (8 kHz) with the agent talking, as (start, end) in ms: 20 ms
/// frames above -45 dBFS, joined across gaps shorter than 300 ms (pauses between words).
fn talk_spurts(audio: &[i16]) -> Vec<(u64, u64)> {
    let mut spurts: Vec<(u64, u64)> = Vec::new();
    for (i, frame) in audio.chunks(160).enumerate() {
        let power = frame.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / frame.len() as f64;
        if 10.0 * (power / 32768f64.powi(2) + 1e-12).log10() < -45.0 {
            continue;
        }
        let at = i as u64 * 20;
        match spurts.last_mut() {
            Some(last) if at - last.1 < 300 => last.1 = at + 20,
            _ => spurts.push((at, at + 20)),
        }
    }
    spurts
}
