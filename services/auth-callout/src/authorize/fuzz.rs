//! Fuzz harness for the request JWT of the auth callout (docs/fuzzing.md): the token is mutated
//! byte-wise, and its claims are mutated as JSON and re-signed with the server key so the
//! mutations reach every check after the signature. Seeds come from `kv-schemas/testdata`
//! (alice's nkey in keys.json, nonces and their signatures in nonces.json).
#![allow(clippy::unwrap_used)]

#[path = "../../../../kv-schemas/tests/common/mod.rs"]
mod common;
#[path = "../../../../kv-schemas/tests/fuzzkit/mod.rs"]
mod fuzzkit;

use super::*;
use fuzzkit::{Rng, harvest, mutate_json, run};

struct Only(PublicKey);

impl KeyRegistry for Only {
    async fn is_registered(&self, key: &PublicKey) -> Result<bool, RegistryError> {
        Ok(*key == self.0)
    }
}

fn load(file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(common::testdata_dir().join(file)).unwrap()).unwrap()
}

#[test]
fn fuzz_callout_request_jwt() {
    let keys = load("keys.json");
    let nonces = load("nonces.json");
    let alice = keys["identities"].as_array().unwrap().iter().find(|i| i["name"] == "alice").unwrap();
    let alice_nkey = alice["nkey_public"].as_str().unwrap().to_owned();
    let key = user_nkey_to_key(&alice_nkey).unwrap();
    let server = KeyPair::new_server();
    let issuer = KeyPair::new_account();
    let auth = Authorizer::new(&issuer, "USERS".into(), Duration::from_secs(3600), Duration::ZERO).unwrap();
    let now_s = 1_800_000_000;
    let now = UNIX_EPOCH + Duration::from_secs(now_s as u64);
    let conn_user = KeyPair::new_user().public_key();
    let claims = |nonce: &str, sig: &str| {
        json!({
            "aud": "nats-authorization-request", "jti": "x", "iat": now_s, "exp": now_s + 2,
            "iss": server.public_key(), "sub": issuer.public_key(),
            "nats": {
                "server_id": {"name": "kez", "host": "127.0.0.1", "id": server.public_key(), "version": "2.15.1"},
                "user_nkey": conn_user,
                "client_info": {"host": "127.0.0.1", "id": 7, "kind": "Client", "type": "websocket", "nonce": nonce},
                "connect_opts": {"nkey": alice_nkey, "sig": sig, "name": "kez-device:0123456789abcdef", "protocol": 1},
                "type": "authorization_request", "version": 2,
            }
        })
    };
    let sign = |c: &Value| natsjwt::encode(&server, c.as_object().unwrap()).unwrap().into_bytes();
    let mut corpus = vec![];
    for c in nonces["cases"].as_array().unwrap() {
        let sig = c["signature"].as_str().unwrap_or("");
        corpus.push(sign(&claims(c["nonce"].as_str().unwrap(), sig)));
    }
    let mut dict = vec![];
    for c in &corpus {
        harvest(&Value::Object(natsjwt::decode_claims_unverified(std::str::from_utf8(c).unwrap()).unwrap()), &mut dict);
    }
    let mut bytes = fuzzkit::byte_mutator(corpus.clone());
    let mutate = |rng: &mut Rng, base: &[u8]| -> Vec<u8> {
        let Ok(c) = std::str::from_utf8(base)
            .map_err(|_| ())
            .and_then(|t| natsjwt::decode_claims_unverified(t).map_err(|_| ()))
        else {
            return bytes(rng, base);
        };
        if rng.one_in(3) {
            return bytes(rng, base);
        }
        let mut v = Value::Object(c);
        for _ in 0..1 + rng.below(2) {
            mutate_json(rng, &mut v, &dict);
        }
        match v.as_object() {
            Some(m) => natsjwt::encode(&server, m).map(String::into_bytes).unwrap_or_else(|_| base.to_vec()),
            None => base.to_vec(),
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let registry = Only(key);
    let mut admitted = 0u64;
    run("callout_request_jwt", &corpus.clone(), mutate, |input| {
        if let Ok(req) = parse_request(input, now_s) {
            assert!(req.user_nkey.starts_with('U'));
            assert_eq!(req.claims.nats.server_id.id, req.server_id);
            assert!(req.server_id.starts_with('N'));
        }
        let o = rt.block_on(auth.handle(input, &registry, now));
        if parse_request(input, now_s).is_err() {
            assert!(o.reply.is_empty(), "an unverifiable request got a signed answer");
        }
        if let Decision::Accepted { key: k, .. } = o.decision {
            admitted += 1;
            // Admitted ⇒ the registered key signed the nonce the server sent.
            let c = natsjwt::decode_claims_unverified(std::str::from_utf8(input).unwrap().trim()).unwrap();
            assert_eq!(k, key);
            let nonce = c["nats"]["client_info"]["nonce"].as_str().unwrap();
            let sig = decode_signature(c["nats"]["connect_opts"]["sig"].as_str().unwrap()).unwrap();
            assert!(!nonce.is_empty());
            k.verify_strict(nonce.as_bytes(), &sig).unwrap();
            assert!(!o.reply.is_empty());
        }
    });
    assert!(admitted > 0, "no request was admitted: the harness never reaches the end of the checks");
}
