//! The user's identity: one 32-byte Ed25519 seed (PROTOCOL.md §2) and every
//! form derived from it — the 24-word mnemonic, the `ed25519:` key string, the
//! NATS nkeys, the per-device Iroh endpoint keys and the X25519 KEM public key — plus the one
//! non-KEZ signature the client makes with it: the NATS server nonce
//! (PROTOCOL.md §2.2, nonce rule enforced here).

use std::fmt;

use bip39::{Language, Mnemonic};
use ed25519_dalek::SigningKey;
use kv_schemas::PublicKey;
use kv_schemas::encoding::b64_encode;
use kv_schemas::keys::sign_raw;
use kv_schemas::sigchain::{IrohRole, endpoint_seed};
use kv_schemas::subjects::DeviceId;
use zeroize::Zeroizing;

/// Number of words in a KEZ mnemonic (256 bits of entropy + 8 checksum bits).
pub const MNEMONIC_WORDS: usize = 24;

/// Why a mnemonic was refused. The message names the problem (and the word
/// position) so a person can fix a typo; it does not repeat the word itself,
/// because a mistyped secret word is still close to the secret and error
/// messages end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MnemonicError {
    /// Not exactly 24 words.
    #[error("expected {MNEMONIC_WORDS} words, got {got}")]
    WordCount {
        /// Words found after normalisation.
        got: usize,
    },
    /// A word that is not in the BIP-39 English list.
    #[error("word {position} is not in the BIP-39 English word list")]
    UnknownWord {
        /// 1-based position of the first unknown word.
        position: usize,
        /// The word as normalised (ASCII-lowercased); for input suggestions.
        word: String,
    },
    /// Every word is known but the checksum does not match.
    #[error("the words do not match their checksum: one of them is wrong or out of order")]
    Checksum,
}

/// The ASCII whitespace of PROTOCOL.md §2 (WHATWG "ASCII whitespace":
/// TAB, LF, FF, CR, SPACE; not VT, not non-ASCII spaces).
fn is_ascii_ws(c: char) -> bool {
    c.is_ascii_whitespace()
}

/// Normalises mnemonic input: ASCII lowercase, split on ASCII whitespace.
/// Non-ASCII letters are not case-folded, so such a word is simply unknown.
pub fn normalize_mnemonic(input: &str) -> Vec<String> {
    input.split(is_ascii_ws).filter(|w| !w.is_empty()).map(str::to_ascii_lowercase).collect()
}

/// Parses a 24-word mnemonic into the 32-byte seed (the BIP-39 entropy, not
/// BIP-39's PBKDF2 seed).
pub fn mnemonic_to_seed(input: &str) -> Result<Zeroizing<[u8; 32]>, MnemonicError> {
    let words = Zeroizing::new(normalize_mnemonic(input));
    if words.len() != MNEMONIC_WORDS {
        return Err(MnemonicError::WordCount { got: words.len() });
    }
    // Look every word up ourselves first: bip39 splits on Unicode whitespace,
    // reports 0-based indices and would accept 12-word phrases.
    let english = Language::English;
    if let Some((i, w)) = words.iter().enumerate().find(|(_, w)| english.find_word(w).is_none()) {
        return Err(MnemonicError::UnknownWord { position: i + 1, word: w.clone() });
    }
    let joined = Zeroizing::new(words.join(" "));
    let m = Mnemonic::parse_in_normalized(english, &joined).map_err(|e| match e {
        bip39::Error::BadWordCount(n) => MnemonicError::WordCount { got: n },
        bip39::Error::UnknownWord(i) => {
            MnemonicError::UnknownWord { position: i + 1, word: words.get(i).cloned().unwrap_or_default() }
        }
        // InvalidChecksum, and nothing else can happen for 24 known English words.
        _ => MnemonicError::Checksum,
    })?;
    let (entropy, len) = m.to_entropy_array();
    let entropy = Zeroizing::new(entropy);
    let mut seed = Zeroizing::new([0u8; 32]);
    if len != 32 {
        return Err(MnemonicError::WordCount { got: m.word_count() });
    }
    seed.copy_from_slice(&entropy[..32]);
    Ok(seed)
}

/// The 24-word mnemonic of a seed (single spaces, lowercase).
pub fn seed_to_mnemonic(seed: &[u8; 32]) -> Zeroizing<String> {
    // 32 bytes is always a valid BIP-39 entropy length.
    let m = Mnemonic::from_entropy_in(Language::English, seed).unwrap_or_else(|_| unreachable!("32-byte entropy"));
    let mut out = Zeroizing::new(String::with_capacity(24 * 9));
    for (i, w) in m.words().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Errors of the nkey encoding (never expected for a valid seed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nkey encoding failed: {0}")]
pub struct NkeyError(String);

/// A user identity: the Ed25519 signing key made from one 32-byte seed.
///
/// The key is zeroized when the value is dropped (ed25519-dalek's `zeroize`
/// feature), and `Debug` prints only the public key.
pub struct Identity {
    signing: SigningKey,
    /// The `U…` nkey, computed once from the public key (no seed copy per call).
    nkey_public: String,
}

impl Identity {
    /// A fresh identity from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let seed = Zeroizing::new(kv_schemas::random_bytes::<32>());
        Self::from_seed(*seed)
    }

    /// The identity of a seed. Every 32-byte string is a valid seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let mut seed = seed;
        let signing = SigningKey::from_bytes(&seed);
        zeroize::Zeroize::zeroize(&mut seed);
        let nkey_public = nkey_encode(&[NKEY_PREFIX_USER], PublicKey::of(&signing).as_bytes()).to_string();
        Self { signing, nkey_public }
    }

    /// Restores an identity from its 24-word mnemonic (PROTOCOL.md §2).
    pub fn from_mnemonic(words: &str) -> Result<Self, MnemonicError> {
        let seed = mnemonic_to_seed(words)?;
        Ok(Self::from_seed(*seed))
    }

    /// The 32-byte seed (secret).
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The 24-word mnemonic of the seed (secret).
    pub fn mnemonic(&self) -> Zeroizing<String> {
        seed_to_mnemonic(&self.seed())
    }

    /// The signing key, for the `kv_schemas` builders (`register::build`,
    /// `sigchain::build_link`, `envelope::seal`, `manifest::build`, …).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The public identity key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::of(&self.signing)
    }

    /// `ed25519:<hex>`.
    pub fn key_string(&self) -> String {
        self.public_key().to_string()
    }

    /// The NATS user nkey (`U…`) of the public key.
    pub fn nkey_public(&self) -> Result<String, NkeyError> {
        Ok(self.nkey_public.clone())
    }

    /// The NATS user seed (`SU…`, secret). Encoded here rather than through
    /// `nkeys::KeyPair`, which keeps a plain copy of the seed it never wipes.
    pub fn nkey_seed(&self) -> Result<Zeroizing<String>, NkeyError> {
        // Seed prefix: 18 << 3 ("S"), then the user type byte spread over two bytes.
        let prefix = [NKEY_PREFIX_SEED | (NKEY_PREFIX_USER >> 5), (NKEY_PREFIX_USER & 31) << 3];
        Ok(nkey_encode(&prefix, &self.seed()))
    }

    /// The secret of this device's Iroh endpoint for `role` (`iroh::SecretKey::from_bytes`):
    /// `endpoint_seed(seed, device, role)` of PROTOCOL.md §7.5. Never the seed itself, so
    /// a serving and a fetching process, or two devices, never share an endpoint id.
    pub fn iroh_endpoint_secret(&self, device: &DeviceId, role: IrohRole) -> Zeroizing<[u8; 32]> {
        endpoint_seed(&self.seed(), device, role)
    }

    /// The endpoint id (public key) of [`Identity::iroh_endpoint_secret`].
    pub fn iroh_endpoint_key(&self, device: &DeviceId, role: IrohRole) -> PublicKey {
        kv_schemas::sigchain::endpoint_key(&self.seed(), device, role)
    }

    /// The X25519 public key used as a KEM recipient key (PROTOCOL.md §2).
    pub fn x25519_public(&self) -> [u8; 32] {
        self.public_key().x25519()
    }

    /// Signs a NATS server nonce for nkey authentication, refusing anything
    /// that is not a plain nonce (PROTOCOL.md §2.2), so a hostile broker
    /// cannot obtain a signature over a KEZ signing input. Returns base64url
    /// without padding (nats-server accepts it).
    ///
    /// Plug into `async_nats::ConnectOptions::with_auth_callback`: set `nkey`
    /// to [`Identity::nkey_public`] and `signature` to the decoded bytes, or
    /// return an auth error when this refuses (including for an empty nonce).
    pub fn sign_nats_nonce(&self, nonce: &str) -> Result<String, kv_schemas::KezError> {
        Ok(b64_encode(&self.sign_nats_nonce_raw(nonce)?))
    }

    /// As [`Identity::sign_nats_nonce`], returning the 64 raw signature bytes.
    pub fn sign_nats_nonce_raw(&self, nonce: &str) -> Result<[u8; 64], kv_schemas::KezError> {
        kv_schemas::nonce::check_nats_nonce(nonce)?;
        Ok(sign_raw(&self.signing, nonce.as_bytes()))
    }
}

/// nkeys prefix byte of a user key (`U`: 20 << 3).
const NKEY_PREFIX_USER: u8 = 20 << 3;
/// nkeys prefix byte of a seed (`S`: 18 << 3).
const NKEY_PREFIX_SEED: u8 = 18 << 3;

/// The nkeys text form (PROTOCOL.md §2): base32 (RFC 4648, no padding) of
/// `prefix || key || CRC-16/XMODEM(prefix || key)` little-endian. Every
/// intermediate buffer is wiped, since `key` may be a seed.
fn nkey_encode(prefix: &[u8], key: &[u8; 32]) -> Zeroizing<String> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut raw = Zeroizing::new(Vec::with_capacity(prefix.len() + 34));
    raw.extend_from_slice(prefix);
    raw.extend_from_slice(key);
    let crc = crc16_xmodem(&raw);
    raw.extend_from_slice(&crc.to_le_bytes());
    let mut out = Zeroizing::new(String::with_capacity(raw.len() * 8 / 5 + 1));
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in raw.iter() {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({}, seed: <redacted>)", self.key_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ZERO_WORDS: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art";

    #[test]
    fn mnemonic_round_trip_and_normalisation() {
        for _ in 0..10 {
            let id = Identity::generate();
            let m = id.mnemonic();
            assert_eq!(m.split(' ').count(), 24);
            assert_eq!(*Identity::from_mnemonic(&m).unwrap().seed(), *id.seed());
            let messy = format!("  {}\n", m.to_ascii_uppercase().replace(' ', " \t\r\n\x0c "));
            assert_eq!(*Identity::from_mnemonic(&messy).unwrap().seed(), *id.seed());
        }
        assert_eq!(*Identity::from_mnemonic(ZERO_WORDS).unwrap().seed(), [0u8; 32]);
    }

    #[test]
    fn mnemonic_errors_name_the_problem() {
        let twelve = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
        let e = Identity::from_mnemonic(twelve).unwrap_err();
        assert_eq!(e, MnemonicError::WordCount { got: 12 });
        assert!(e.to_string().contains("24") && e.to_string().contains("12"), "{e}");

        let mut words: Vec<&str> = ZERO_WORDS.split(' ').collect();
        words[6] = "abandonn";
        let e = Identity::from_mnemonic(&words.join(" ")).unwrap_err();
        assert_eq!(e, MnemonicError::UnknownWord { position: 7, word: "abandonn".into() });
        assert!(e.to_string().contains("word 7"), "{e}");
        assert!(!e.to_string().contains("abandonn"), "the word itself is not echoed: {e}");

        let e = Identity::from_mnemonic(&"abandon ".repeat(24)).unwrap_err();
        assert_eq!(e, MnemonicError::Checksum);
        assert!(e.to_string().contains("checksum"));

        // Vertical tab and NBSP are not ASCII whitespace: the words stay joined.
        let vt = ZERO_WORDS.replacen(' ', "\x0b", 1);
        assert_eq!(Identity::from_mnemonic(&vt).unwrap_err(), MnemonicError::WordCount { got: 23 });
        // Kelvin sign is not folded to 'k'.
        let kelvin = format!("\u{212a}ey {}", ZERO_WORDS.split_once(' ').unwrap().1);
        assert!(matches!(
            Identity::from_mnemonic(&kelvin).unwrap_err(),
            MnemonicError::UnknownWord { position: 1, .. }
        ));
    }

    #[test]
    fn key_forms() {
        let id = Identity::from_seed([1u8; 32]);
        assert_eq!(id.key_string(), format!("ed25519:{}", id.public_key().hex()));
        let u = id.nkey_public().unwrap();
        assert!(u.starts_with('U') && u.len() == 56, "{u}");
        let su = id.nkey_seed().unwrap();
        assert!(su.starts_with("SU") && su.len() == 58);
        let kp = nkeys::KeyPair::from_seed(&su).unwrap();
        assert_eq!(kp.public_key(), u);
        let dev: DeviceId = "0123456789abcdef".parse().unwrap();
        // The shared vector (kv-schemas/testdata/iroh_endpoints.json, alice_device1_serve).
        assert_eq!(
            hex::encode(*id.iroh_endpoint_secret(&dev, IrohRole::Serve)),
            "9c9390bfdf5f8d7adf08767c99be8bfee40d896b8e00e6ca1a87bdc4182e69b5"
        );
        assert_eq!(
            id.iroh_endpoint_key(&dev, IrohRole::Serve).hex(),
            "9fe16c689037053e92a5ce120c598d6aabb4b4da0f86731e8cc232b577132e8e"
        );
        assert_ne!(id.iroh_endpoint_key(&dev, IrohRole::Fetch), id.iroh_endpoint_key(&dev, IrohRole::Serve));
        assert_ne!(id.iroh_endpoint_key(&dev, IrohRole::Serve), id.public_key());
        let xs = kv_schemas::keys::x25519_secret(id.signing_key());
        assert_eq!(x25519_dalek::PublicKey::from(&xs).to_bytes(), id.x25519_public());
        let dbg = format!("{id:?}");
        assert!(dbg.contains("redacted") && !dbg.contains(&hex::encode([1u8; 32])), "{dbg}");
    }

    #[test]
    fn nats_nonce_signing_enforces_the_rule() {
        let id = Identity::from_seed([1u8; 32]);
        let sig = id.sign_nats_nonce("Xyz_-012345678").unwrap();
        let raw: [u8; 64] = kv_schemas::encoding::b64_decode_fixed(&sig, "sig").unwrap();
        id.public_key().verify_strict(b"Xyz_-012345678", &raw).unwrap();
        // The nkeys crate (what nats-server's Go code mirrors) verifies it too.
        nkeys::KeyPair::from_public_key(&id.nkey_public().unwrap()).unwrap().verify(b"Xyz_-012345678", &raw).unwrap();
        for bad in ["", "short", "kez-sig-v1\0sigchain.link\0{}", &"a".repeat(25), "abc+/abc+/abc+/"] {
            assert!(id.sign_nats_nonce(bad).is_err(), "{bad:?}");
        }
        let link_input = kv_schemas::sig::signing_input(
            kv_schemas::sig::Purpose::SigchainLink,
            &serde_json::json!({"v":1}).as_object().cloned().unwrap(),
        )
        .unwrap();
        assert!(id.sign_nats_nonce(&String::from_utf8_lossy(&link_input)).is_err());
    }
}
