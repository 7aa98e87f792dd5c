//! The synthetic data: a deterministic generator and the task entities written as an app would.

use super::*;

/// A small deterministic generator (splitmix64), so that every run has the same data.
pub(crate) struct Rng(u64);

impl Rng {
    /// The next value.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// One of `items`.
    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// The id of task `i`.
pub(crate) fn task_id(i: usize) -> String {
    format!("t{i:06}")
}

/// Synthetic task `i`: a to-do item as an app would store it, about 300 bytes pretty-printed.
pub(crate) fn task(i: usize) -> Value {
    const VERBS: &[&str] = &[
        "Call", "Email", "Review", "Fix", "Plan", "Buy", "Book", "Write", "Clean", "Renew",
    ];
    const THINGS: &[&str] = &[
        "the plumber about the kitchen sink",
        "quarterly report draft",
        "dentist appointment for Tuesday",
        "groceries for the weekend",
        "flights to Lisbon",
        "insurance papers",
        "garage and the bike shed",
        "slides for the team meeting",
    ];
    const TAGS: &[&str] = &["home", "work", "errand", "urgent", "later", "family"];
    const NOTES: &[&str] = &[
        "Ask about the invoice from last month.",
        "Check the shared folder first.",
        "",
        "Needs the new address.",
    ];
    let mut rng = Rng(i as u64);
    let created = 1_760_000_000_000u64 + (i as u64) * 61_000;
    let mut tags: Vec<&str> = Vec::new();
    for _ in 0..1 + rng.next() % 3 {
        let tag = rng.pick(TAGS);
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    json!({
        "id": task_id(i),
        "title": format!("{} {}", rng.pick(VERBS), rng.pick(THINGS)),
        "done": rng.next().is_multiple_of(4),
        "priority": rng.next() % 4,
        "project": format!("proj-{:03}", rng.next() % 40),
        "tags": tags,
        "due": format!("2026-{:02}-{:02}", 1 + rng.next() % 12, 1 + rng.next() % 28),
        "notes": rng.pick(NOTES),
        "createdAt": created,
        "updatedAt": created + rng.next() % 86_400_000,
    })
}

/// The text of an entity file, as an app would save it (2-space indent, final newline).
pub(crate) fn file_text(value: &Value) -> Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    Ok(text)
}

/// The path of task `id` in workspace `ws`.
pub(crate) fn task_path(ws: &Path, id: &str) -> PathBuf {
    ws.join(COLLECTION).join(format!("{id}.json"))
}
