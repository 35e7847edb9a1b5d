//! `testdata/iroh_endpoints.json`: generated from fixed inputs, and every stored case checked.

use super::*;

/// `endpoint_seed` written out by hand (PROTOCOL.md §7.5), to cross-check the crate.
pub(crate) fn endpoint_seed_by_hand(seed: &[u8; 32], device: &str, role: &str) -> (Vec<u8>, [u8; 32]) {
    let info = [b"kez-v1/iroh-endpoint".as_slice(), &[0], device.as_bytes(), &[0], role.as_bytes()].concat();
    (info.clone(), hkdf32(seed, b"", &info))
}

pub(crate) fn gen_iroh_endpoints() -> Value {
    let mut endpoints = vec![];
    for (who, seed) in [("alice", ALICE), ("bob", BOB)] {
        for (i, d) in DEVICES.iter().enumerate() {
            for role in IrohRole::ALL {
                let (info, eseed) = endpoint_seed_by_hand(&seed, d, role.as_str());
                let public = pk(eseed);
                endpoints.push(json!({
                    "name": format!("{who}_device{}_{role}", i + 1),
                    "seed": hex_encode(&seed),
                    "key": pk(seed).to_string(),
                    "device": d,
                    "role": role.as_str(),
                    "info_hex": hex_encode(&info),
                    "endpoint_seed": hex_encode(&eseed),
                    "endpoint_public": public.hex(),
                    "body": {"kind": "iroh", "node_id": public.hex(), "device": d, "role": role.as_str()},
                }));
            }
        }
    }
    let invalid_devices: Vec<Value> = [
        ("uppercase", DEVICES[0].to_uppercase()),
        ("15_chars", DEVICES[0][..15].to_string()),
        ("17_chars", format!("{}0", DEVICES[0])),
        ("not_hex", "0123456789abcdeg".to_string()),
        ("empty", String::new()),
    ]
    .into_iter()
    .map(|(n, d)| {
        intend(n, d.parse::<DeviceId>(), "invalid_request");
        json!({"name": n, "device": d, "error": "invalid_request"})
    })
    .collect();
    json!({
        "description": "Per-device Iroh endpoint keys (PROTOCOL.md §7.5): endpoint_seed = HKDF-SHA256(seed, salt \"\", info), endpoint id = its Ed25519 public key, and the add_endpoint body that publishes it. See README.md.",
        "endpoints": endpoints,
        "invalid_devices": invalid_devices,
    })
}

pub(crate) fn check_iroh_endpoints(v: &Value) {
    use kv_schemas::sigchain::{Endpoint, Op, build_link};
    for c in arr(v, "endpoints") {
        let seed = hx32(c, "seed");
        let device: DeviceId = s(c, "device").parse().unwrap();
        let role = IrohRole::parse(s(c, "role")).unwrap();
        assert_eq!(PublicKey::of(&sk(seed)), key_of(c, "key"), "case {}", name(c));
        assert_eq!(hex_encode(&*endpoint_seed(&seed, &device, role)), s(c, "endpoint_seed"), "case {}", name(c));
        let public = endpoint_key(&seed, &device, role);
        assert_eq!(public.hex(), s(c, "endpoint_public"), "case {}", name(c));
        // The body the crate publishes for it, and it parses back as that endpoint.
        let op = Op::AddEndpoint(Endpoint::iroh_device(&public, device, role));
        let link = parse_link(&build_link(&sk(seed), 1, None, NOW, &op).unwrap()).unwrap();
        assert_eq!(link.to_value()["body"], c["body"], "case {}", name(c));
        assert_eq!(link.op, op, "case {}", name(c));
    }
    for c in arr(v, "invalid_devices") {
        expect_code(c, s(c, "device").parse::<DeviceId>());
    }
}

#[test]
pub(crate) fn iroh_endpoints_json() {
    run("iroh_endpoints.json", gen_iroh_endpoints, check_iroh_endpoints);
}
