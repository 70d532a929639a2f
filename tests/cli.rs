//! The `voxbridge` command line: check-config, migrate, transcribe.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn voxbridge(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxbridge"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run voxbridge")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("voxbridge.toml");
    let db = dir.join("v.db");
    std::fs::write(
        &path,
        format!(
            "[database]\nurl = \"sqlite://{}\"\n[telephony]\ndefault_region = \"US\"\n{extra}",
            db.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn check_config_accepts_the_shipped_configs() {
    for config in ["config/voxbridge.example.toml", "config/voxbridge.toml"] {
        let out = voxbridge(&["check-config", "--config", config], &[]);
        assert!(out.status.success(), "{config}: {}", stderr(&out));
    }
}

/// A config body, environment overrides, and the key the error must name.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn check_config_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[Case] = &[
        ("[http]\nlistn = \"127.0.0.1:1\"\n", &[], "http.listn"),
        ("[[orgs]]\nslug = \"a\"\nname = \"A\"\n[[orgs.agents]]\nslug = \"x\"\nname = \"X\"\ndirction = \"inbound\"\n", &[], "orgs[0].agents[0].dirction"),
        ("[[orgs]]\nslug = \"a\"\nname = \"A\"\nnumbers = [\"12\"]\n", &[], "orgs[0].numbers[0]"),
        ("[media]\nrtp_port_min = 30000\nrtp_port_max = 20000\n", &[], "media.rtp_port_min"),
        ("[media]\njitter_min_ms = 300\njitter_max_ms = 100\n", &[], "media.jitter_min_ms"),
        ("[media]\nsource = \"loose\"\n", &[], "media.source"),
        ("[media]\nrealtime_priority = 120\n", &[], "media.realtime_priority"),
        ("[asr]\nmax_calls = 0\n", &[], "asr.max_calls"),
        ("[asr]\nmax_calls = \"lots\"\n", &[], "asr.max_calls"),
        ("", &[("VOXBRIDGE__ASR__MAX_CALLS", "-3")], "asr.max_calls"),
        ("[asr]\nlatency_target_ms = 5\n", &[], "asr.latency_target_ms"),
        ("[asr]\nmodel = \"/nonexistent/model.bin\"\n", &[], "asr.model"),
        ("[asr]\nanswer_model = \"/nonexistent/answers.bin\"\n", &[], "asr.answer_model"),
        ("", &[("VOXBRIDGE__HTTP__LISTEN", "not-an-address")], "http.listen"),
        ("", &[("VOXBRIDGE__TELEPHONY__ENABLED", "true")], "telephony.outbound_trunk"),
        ("", &[("VOXBRIDGE__BOGUS__KEY", "1")], "bogus"),
        ("[[orgs]]\nslug = \"a\"\nname = \"A\"\nmax_concurrent_calls = 0\n", &[], "orgs[0].max_concurrent_calls"),
        ("[[trunks]]\nname = \"t\"\nhost = \"h\"\nmax_concurrent = 0\n", &[], "trunks[0].max_concurrent"),
        ("[[trunks]]\nname = \"t\"\nhost = \"h\"\ncalls_per_second = 0\n", &[], "trunks[0].calls_per_second"),
        ("[[trunks]]\nname = \"t\"\nhost = \"h\"\nmax_concurent = 3\n", &[], "trunks[0].max_concurent"),
    ];
    for (extra, env, key) in cases {
        let config = write_config(dir.path(), extra);
        let out = voxbridge(&["check-config", "--config", config.to_str().unwrap()], env);
        assert!(!out.status.success(), "{key}: accepted");
        assert!(stderr(&out).contains(key), "{key}: {}", stderr(&out));
    }
    let config = write_config(dir.path(), "");
    for valid in [
        ("VOXBRIDGE__HTTP__LISTEN", "127.0.0.1:9999"),
        ("VOXBRIDGE__ASR__MAX_CALLS", "auto"),
        ("VOXBRIDGE__ASR__MAX_CALLS", "12"),
    ] {
        let out = voxbridge(
            &["check-config", "--config", config.to_str().unwrap()],
            &[valid],
        );
        assert!(
            out.status.success(),
            "a valid override {valid:?} is accepted: {}",
            stderr(&out)
        );
    }
}

#[test]
fn check_config_names_unknown_voices_and_bad_voice_settings() {
    let dir = tempfile::tempdir().unwrap();
    let agents = "[[orgs]]\nslug = \"a\"\nname = \"A\"\n\
        [[orgs.agents]]\nslug = \"x\"\nname = \"X\"\ndirection = \"inbound\"\n\
        [[orgs.agents]]\nslug = \"welcome\"\nname = \"W\"\ndirection = \"outbound\"\nvoice = \"friendly_welcome\"\n";
    let config = write_config(dir.path(), agents);
    let out = voxbridge(&["check-config", "--config", config.to_str().unwrap()], &[]);
    assert!(!out.status.success(), "an unknown voice is accepted");
    let err = stderr(&out);
    for needle in [
        "orgs[0].agents[1].voice",
        "\"welcome\"",
        "friendly_welcome",
        "calm_support, formal, friendly, neutral",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let defined = format!("{agents}[voices.friendly_welcome]\nrate = 190\npitch = 60\n");
    let config = write_config(dir.path(), &defined);
    let out = voxbridge(&["check-config", "--config", config.to_str().unwrap()], &[]);
    assert!(out.status.success(), "a configured voice: {}", stderr(&out));

    let remote =
        "[tts]\nurl = \"http://127.0.0.1:8000/v1/audio/speech\"\nmodel = \"m\"\nvoice = \"v\"\n";
    let cases: &[(String, &str)] = &[
        ("[voices.v]\nrate = 500\n".into(), "voices.v.rate"),
        ("[voices.v]\npitch = 100\n".into(), "voices.v.pitch"),
        ("[voices.v]\nvolume = 201\n".into(), "voices.v.volume"),
        (
            "[voices.v]\nengine = \"remote\"\n".into(),
            "voices.v.engine",
        ),
        (
            "[voices.v]\nengine = \"festival\"\n".into(),
            "voices.v.engine",
        ),
        (
            "[voices.v]\nvoice = \"en-us; rm\"\n".into(),
            "voices.v.voice",
        ),
        ("[voices.v]\nspeed = 1\n".into(), "voices.v.speed"),
        (remote.replace("http://", "ftp://"), "tts.url"),
        (format!("{remote}timeout = 1\n"), "tts.timeout"),
    ];
    for (extra, key) in cases {
        let config = write_config(dir.path(), extra);
        let out = voxbridge(&["check-config", "--config", config.to_str().unwrap()], &[]);
        assert!(!out.status.success(), "{key}: accepted");
        assert!(stderr(&out).contains(key), "{key}: {}", stderr(&out));
    }
    let config = write_config(
        dir.path(),
        &format!("{remote}[voices.v]\nengine = \"remote\"\n"),
    );
    let out = voxbridge(&["check-config", "--config", config.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "a remote voice with [tts]: {}",
        stderr(&out)
    );
}

/// Agents whose script cannot work name the agent and the key.
#[test]
fn check_config_names_agents_whose_script_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let org = "[[orgs]]\nslug = \"a\"\nname = \"A\"\n";
    let agent = |slug: &str, direction: &str, rest: &str| {
        format!(
            "[[orgs.agents]]\nslug = \"{slug}\"\nname = \"N\"\ndirection = \"{direction}\"\n{rest}"
        )
    };
    let cases = [
        (
            agent("one", "outbound", "default = true\n") + &agent("two", "outbound", "default = true\n"),
            "orgs[0].agents[1].default",
            "\"two\"",
        ),
        (
            agent("in", "inbound", "greeting = \"Hi {{name}}\"\n"),
            "orgs[0].agents[0].greeting",
            "{{name}}",
        ),
        (
            agent("in", "inbound", "questions = [{ key = \"q\", ask = \"Which?\", type = \"choice\", choices = [\"a\"] }]\n"),
            "orgs[0].agents[0].questions",
            "\"in\"",
        ),
        (
            agent("in", "inbound", "questions = [{ key = \"q\", ask = \"Which?\", type = \"choice\", choices = [\"a\", \"A \"] }]\n"),
            "orgs[0].agents[0].questions",
            "repeated",
        ),
        (
            agent("in", "inbound", &format!("questions = [{{ key = \"q\", ask = \"Which?\", type = \"choice\", choices = [{}] }}]\n",
                (1..=10).map(|i| format!("\"c{i}\"")).collect::<Vec<_>>().join(", "))),
            "orgs[0].agents[0].questions",
            "at most 9",
        ),
        (
            agent("in", "inbound", "questions = [{ key = \"q\", ask = \"Account?\", type = \"digits\", min_length = 9, max_length = 8 }]\n"),
            "orgs[0].agents[0].questions",
            "min_length <= max_length",
        ),
        (
            agent("in", "inbound", "questions = [{ key = \"q\", ask = \"When?\", type = \"date\", max_length = 8 }]\n"),
            "orgs[0].agents[0].questions",
            "not date",
        ),
        (
            agent("in", "inbound", "questions = [{ key = \"q\", ask = \"When?\", type = \"weekday\" }]\n"),
            "orgs[0].agents[0].questions[0].type",
            "weekday",
        ),
    ];
    for (agents, key, detail) in &cases {
        let config = write_config(dir.path(), &format!("{org}{agents}"));
        let out = voxbridge(&["check-config", "--config", config.to_str().unwrap()], &[]);
        assert!(!out.status.success(), "{key}: accepted");
        let err = stderr(&out);
        assert!(
            err.contains(key) && err.contains(detail),
            "{key} / {detail}: {err}"
        );
    }
    // Outbound agents may use the context; a call without the key is refused at the API.
    let config = write_config(
        dir.path(),
        &format!(
            "{org}{}",
            agent("out", "outbound", "greeting = \"Hi {{name}}\"\n")
        ),
    );
    let out = voxbridge(&["check-config", "--config", config.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn migrate_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    for _ in 0..2 {
        let out = voxbridge(&["migrate", "--config", config.to_str().unwrap()], &[]);
        assert!(
            out.status.success(),
            "migrate is repeatable: {}",
            stderr(&out)
        );
    }
    assert!(dir.path().join("v.db").is_file());
}

fn model() -> String {
    let path = std::env::var("VOXBRIDGE_ASR_MODEL").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/models/ggml-tiny.en.bin").to_owned()
    });
    assert!(
        Path::new(&path).is_file(),
        "{path} is missing: run scripts/fetch-model.sh"
    );
    path
}

#[test]
fn transcribe_prints_text_and_typed_json() {
    let model = model();
    let out = voxbridge(
        &["transcribe", "fixtures/asr/free_02.wav", "--model", &model],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let heard = ["internet", "down", "yesterday", "morning"]
        .iter()
        .filter(|w| text.contains(*w))
        .count();
    assert!(
        heard >= 3,
        "keywords of 'My internet has been down since yesterday morning' in {text:?}"
    );

    let out = voxbridge(
        &[
            "transcribe",
            "fixtures/asr/choice_01.wav",
            "--model",
            &model,
            "--answer-type",
            "choice",
            "--choices",
            "billing,technical support,sales,cancellations",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    for key in ["text", "value", "segments"] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    assert_eq!(
        json["value"], "billing",
        "the caller said 'Billing.': {json}"
    );
}

#[test]
fn transcribe_errors_are_clear() {
    let model = model();
    let out = voxbridge(&["transcribe", "Cargo.toml", "--model", &model], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("RIFF/WAVE"), "{}", stderr(&out));
    let out = voxbridge(
        &[
            "transcribe",
            "fixtures/asr/free_02.wav",
            "--model",
            "/nonexistent.bin",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent.bin"),
        "{}",
        stderr(&out)
    );
}
