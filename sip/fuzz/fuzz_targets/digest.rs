//! Digest header parsing, challenge selection and server verification: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxbridge_sip::auth::{authorization, pick_challenge, Algorithm, AuthParams, Credentials, DigestServer};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = AuthParams::parse(text);
    if let Some(c) = pick_challenge([text]) {
        let creds = Credentials { username: "u".into(), password: "p".into() };
        let _ = authorization(&c, &creds, "INVITE", "sip:a@b", 1);
    }
    let server = DigestServer::new("voxbridge", [1; 32], 300, Algorithm::Md5);
    let _ = server.verify(text, "INVITE", 1_000_000, |u| (u == "u").then(|| "p".to_owned()));
});
