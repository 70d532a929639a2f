//! Voice agents: what the builtin agent says and asks ([`conversation`]), how it turns what
//! the caller said or keyed into answers ([`answers`]), `{{key}}` texts ([`template`]) and
//! its voice ([`tts`]).

pub mod answers;
pub mod conversation;
pub mod template;
pub mod tts;
