//! A small corpus-seeded mutational fuzzer that runs as an ordinary `#[test]` on stable Rust.
//!
//! Every harness starts from real inputs (the JSON vectors of `kv-schemas/testdata/`), mutates
//! them byte-wise and, for JSON, structure-wise (so a mutation can be re-signed and reach the
//! checks that run after the signature), and calls the target under `catch_unwind`. The run is
//! deterministic for a given seed. Environment (docs/fuzzing.md):
//!
//! * `KEZ_FUZZ_ITERS` executions per harness (default 2 000, what `./kez test` runs);
//! * `KEZ_FUZZ_SEED` the PRNG seed (default fixed, so CI runs are reproducible);
//! * `KEZ_FUZZ_CRASH_DIR` where a panicking input is written (default the system temp dir).
//!
//! Included by path from other crates' tests (like `common/mod.rs`), so it has no dependency
//! beyond `serde_json`.
#![allow(dead_code, clippy::unwrap_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use serde_json::{Map, Value};

/// Default executions per harness in `cargo test`.
pub const DEFAULT_ITERS: u64 = 2_000;

/// Executions per harness (`KEZ_FUZZ_ITERS`).
pub fn iterations() -> u64 {
    std::env::var("KEZ_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_ITERS)
}

/// The PRNG seed (`KEZ_FUZZ_SEED`).
pub fn seed() -> u64 {
    std::env::var("KEZ_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x6b65_7a2d_6675_7a7a)
}

/// SplitMix64: tiny, fast, deterministic.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Bytes that tend to break JSON, base64url, hex, key and handle parsers.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"\\u00e9",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"-1",
    b"1e3",
    b"1.0",
    b"9007199254740992",
    b"18446744073709551616",
    b"00",
    b"=",
    b"+",
    b"/",
    b"@",
    b".",
    b" ",
    b"\t",
    b"\x0b",
    b"\xc3\xa9",
    b"\xe2\x84\xaa",
    b"\xff",
    b"\xed\xa0\x80",
    b"ed25519:",
    b"A",
    b"a",
    b"Z",
];

/// One random byte-level change.
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let len = data.len();
    match rng.below(9) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = *rng.pick(&[0u8, 0x7f, 0x80, 0xff, b'"', b'\\', b'0', b'9', b'a', b'f', b'g', b'A']);
        }
        2 => {
            let i = rng.below(len + 1);
            data.insert(i, rng.next() as u8);
        }
        3 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(16));
            data.drain(i..i + n);
        }
        4 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(32));
            let chunk = data[i..i + n].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
        }
        5 => {
            let tok = rng.pick(TOKENS);
            let at = rng.below(len + 1);
            data.splice(at..at, tok.iter().copied());
        }
        6 if !corpus.is_empty() => {
            // Splice: our head, another input's tail.
            let other = rng.pick(corpus);
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        7 if len > 0 => data.truncate(rng.below(len)),
        _ if len > 1 => {
            let (i, j) = (rng.below(len), rng.below(len));
            data.swap(i, j);
        }
        _ => data.push(rng.next() as u8),
    }
}

/// Values that sit on the edges of the KEZ JSON profile and the field rules.
pub fn interesting_value(rng: &mut Rng) -> Value {
    match rng.below(22) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => Value::from(0u64),
        3 => Value::from(1u64),
        4 => Value::from((1u64 << 53) - 1),
        5 => Value::from(1u64 << 53),
        6 => Value::from(u64::MAX),
        7 => Value::from(-1i64),
        8 => serde_json::Number::from_f64(1.5).map(Value::Number).unwrap_or(Value::Null),
        9 => Value::from(""),
        10 => Value::from("x".repeat(1 + rng.below(600))),
        11 => Value::from("\u{0}"),
        12 => Value::from("\u{212a}"),
        13 => Value::from("ed25519:".to_owned() + &"0".repeat(64)),
        14 => Value::from("ed25519:".to_owned() + &"f".repeat(64)),
        15 => Value::from("a".repeat(64)),
        16 => Value::from("AAAAAAAAAAAAAAAAAAAAAA"),
        17 => Value::Array(vec![]),
        18 => Value::Object(Map::new()),
        19 => Value::from(rng.next() >> 11),
        20 => Value::from("alice@kez.lat"),
        _ => Value::from(format!("{:x}", rng.next())),
    }
}

fn mutate_string(rng: &mut Rng, s: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    for _ in 0..1 + rng.below(3) {
        mutate_bytes(rng, &mut b, &[]);
    }
    // Keep it a string: invalid UTF-8 cannot live in a Value.
    String::from_utf8_lossy(&b).into_owned()
}

/// Counts the nodes of a value (for picking one uniformly).
fn nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(nodes).sum(),
        Value::Object(m) => m.values().map(nodes).sum(),
        _ => 0,
    }
}

/// Applies one structural change to the `target`-th node (pre-order).
fn mutate_node(rng: &mut Rng, v: &mut Value, target: &mut usize, dict: &[Value]) -> bool {
    if *target == 0 {
        match v {
            Value::Object(m) if !m.is_empty() && rng.one_in(3) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = rng.pick(&keys).clone();
                match rng.below(4) {
                    0 => {
                        m.remove(&k);
                    }
                    1 => {
                        let nk = mutate_string(rng, &k);
                        if let Some(x) = m.remove(&k) {
                            m.insert(nk, x);
                        }
                    }
                    2 => {
                        let nk = rng
                            .pick(&["x", "sig", "type", "v", "extra_key", "Type", "a".repeat(33).as_str()])
                            .to_string();
                        m.insert(nk, interesting_value(rng));
                    }
                    _ => {
                        let x = m[&k].clone();
                        m.insert(k + "_", x);
                    }
                }
            }
            Value::Array(a) if !a.is_empty() && rng.one_in(3) => match rng.below(3) {
                0 => {
                    let i = rng.below(a.len());
                    a.remove(i);
                }
                1 => {
                    let i = rng.below(a.len());
                    let x = a[i].clone();
                    a.insert(i, x);
                }
                _ => {
                    let (i, j) = (rng.below(a.len()), rng.below(a.len()));
                    a.swap(i, j);
                }
            },
            Value::String(s) if rng.one_in(2) => *s = mutate_string(rng, s),
            Value::Number(n) if rng.one_in(2) => {
                let x = n.as_u64().unwrap_or(0);
                *v = Value::from(match rng.below(4) {
                    0 => x.wrapping_add(1),
                    1 => x.wrapping_sub(1),
                    2 => x ^ (1 << rng.below(64)),
                    _ => x.wrapping_mul(2),
                });
            }
            _ if !dict.is_empty() && rng.one_in(3) => *v = rng.pick(dict).clone(),
            _ => *v = interesting_value(rng),
        }
        return true;
    }
    *target -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|x| mutate_node(rng, x, target, dict)),
        Value::Object(m) => m.values_mut().any(|x| mutate_node(rng, x, target, dict)),
        _ => false,
    }
}

/// One structural change somewhere in `v`; `dict` holds values worth transplanting (other
/// vectors' fields).
pub fn mutate_json(rng: &mut Rng, v: &mut Value, dict: &[Value]) {
    let mut target = rng.below(nodes(v));
    mutate_node(rng, v, &mut target, dict);
}

/// Every scalar and sub-object of `v`, as a dictionary for [`mutate_json`].
pub fn harvest(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| harvest(x, out)),
        Value::Object(m) => m.values().for_each(|x| harvest(x, out)),
        _ => {}
    }
    if out.len() < 4096 {
        out.push(v.clone());
    }
}

/// Runs `target` on `iterations()` mutated inputs drawn from `corpus` (seed inputs first,
/// unmutated). `mutate` turns a corpus input into a test input. A panic in `target` writes the
/// input to the crash directory and fails the test with the reproduction command.
/// Returns the number of executions.
pub fn run(
    name: &str,
    corpus: &[Vec<u8>],
    mut mutate: impl FnMut(&mut Rng, &[u8]) -> Vec<u8>,
    mut target: impl FnMut(&[u8]),
) -> u64 {
    assert!(!corpus.is_empty(), "fuzz {name}: empty seed corpus");
    let seed = seed() ^ fnv(name.as_bytes());
    let mut rng = Rng::new(seed);
    let iters = iterations().max(corpus.len() as u64);
    let mut execs = 0;
    for i in 0..iters {
        let input = match corpus.get(i as usize) {
            Some(c) => c.clone(),
            None => {
                let base = rng.pick(corpus).clone();
                mutate(&mut rng, &base)
            }
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input)));
        execs += 1;
        if let Err(panic) = outcome {
            let path = crash_path(name, &input);
            let _ = std::fs::write(&path, &input);
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "fuzz {name}: panic on execution {i} ({msg}); input saved to {}; reproduce with \
                 KEZ_FUZZ_SEED={} KEZ_FUZZ_ITERS={}",
                path.display(),
                self::seed(),
                i + 1
            );
        }
    }
    eprintln!("fuzz {name}: {execs} executions, seed {}", self::seed());
    execs
}

/// The usual mutation: 1 to 4 byte-level changes.
pub fn byte_mutator(corpus: Vec<Vec<u8>>) -> impl FnMut(&mut Rng, &[u8]) -> Vec<u8> {
    move |rng, base| {
        let mut d = base.to_vec();
        for _ in 0..1 + rng.below(4) {
            mutate_bytes(rng, &mut d, &corpus);
        }
        d
    }
}

fn crash_path(name: &str, input: &[u8]) -> PathBuf {
    let dir = std::env::var_os("KEZ_FUZZ_CRASH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("kez-fuzz-{name}-{:016x}.bin", fnv(input)))
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Flips `count` random single bits of `bytes` (all bits when `count` is `None`) and calls
/// `check` on each result; used for "verify fails on any single-bit flip of signed bytes".
pub fn for_bit_flips(rng: &mut Rng, bytes: &[u8], count: Option<usize>, mut check: impl FnMut(&[u8], usize)) {
    let total = bytes.len() * 8;
    let mut flip = |bit: usize| {
        let mut b = bytes.to_vec();
        b[bit / 8] ^= 1 << (bit % 8);
        check(&b, bit);
    };
    match count {
        None => (0..total).for_each(&mut flip),
        Some(n) => (0..n).for_each(|_| flip(rng.below(total))),
    }
}
