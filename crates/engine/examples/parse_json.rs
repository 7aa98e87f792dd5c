//! The baseline of `scripts/bench-file`: reads one JSON file and parses it once into a
//! `serde_json::Value` (with the features this workspace builds serde_json with:
//! `preserve_order`, `arbitrary_precision`), and prints how long that took.
//!
//! ```sh
//! cargo build --release -p deltasync-engine --example parse_json
//! target/release/examples/parse_json cities.json
//! ```

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: parse_json FILE"))?;
    let start = Instant::now();
    let bytes = std::fs::read(&path)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)?;
    let elapsed = start.elapsed();
    // Printed after the clock stopped; the value is used so that the parse is not optimised
    // away.
    let items = match &value {
        serde_json::Value::Array(a) => a.len(),
        serde_json::Value::Object(m) => m.values().map(|v| v.as_array().map_or(1, Vec::len)).sum(),
        _ => 1,
    };
    println!(
        "{} bytes, {items} items, parsed in {:.1} ms",
        bytes.len(),
        elapsed.as_secs_f64() * 1000.0
    );
    Ok(())
}
