//! Least-recently-used audio cache bounded by total samples, not entries: one long prompt
//! weighs as much as many short ones.

use std::collections::HashMap;
use std::sync::Arc;

type Key = (String, String);

pub(super) struct AudioCache {
    entries: HashMap<Key, Entry>,
    samples: usize,
    budget: usize,
    clock: u64,
}

struct Entry {
    audio: Arc<[i16]>,
    used: u64,
}

impl AudioCache {
    pub(super) fn new(budget_samples: usize) -> Self {
        Self {
            entries: HashMap::new(),
            samples: 0,
            budget: budget_samples,
            clock: 0,
        }
    }

    pub(super) fn get(&mut self, voice: &str, text: &str) -> Option<Arc<[i16]>> {
        self.clock += 1;
        // A (String, String) key cannot be looked up by (&str, &str) without allocating; two
        // short allocations per prompt are nothing next to the audio.
        let entry = self.entries.get_mut(&(voice.to_owned(), text.to_owned()))?;
        entry.used = self.clock;
        Some(entry.audio.clone())
    }

    pub(super) fn insert(&mut self, voice: &str, text: &str, audio: Arc<[i16]>) {
        if audio.len() > self.budget {
            return;
        }
        self.clock += 1;
        let entry = Entry {
            audio,
            used: self.clock,
        };
        self.samples += entry.audio.len();
        if let Some(old) = self
            .entries
            .insert((voice.to_owned(), text.to_owned()), entry)
        {
            self.samples -= old.audio.len();
        }
        while self.samples > self.budget {
            // A linear scan per eviction: the cache holds prompts (hundreds), and evictions
            // happen only once it is full, so an ordered index is not worth its upkeep.
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(gone) = self.entries.remove(&oldest) {
                self.samples -= gone.audio.len();
            }
        }
    }

    #[cfg(test)]
    pub(super) fn samples(&self) -> usize {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(n: usize) -> Arc<[i16]> {
        vec![1i16; n].into()
    }

    #[test]
    fn evicts_the_least_recently_used_within_the_budget() {
        let mut c = AudioCache::new(100);
        c.insert("v", "a", audio(40));
        c.insert("v", "b", audio(40));
        assert!(c.get("v", "a").is_some(), "touch a: b is now the oldest");
        c.insert("v", "c", audio(40));
        assert!(c.get("v", "b").is_none());
        assert!(c.get("v", "a").is_some() && c.get("v", "c").is_some());
        assert_eq!(c.samples(), 80);
        c.insert("v", "huge", audio(101));
        assert!(
            c.get("v", "huge").is_none(),
            "larger than the budget: not kept"
        );
        c.insert("v", "a", audio(10));
        assert_eq!(c.samples(), 50, "replacing an entry releases its samples");
        assert!(c.get("w", "a").is_none(), "keyed by voice too");
    }
}
