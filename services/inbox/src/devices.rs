//! `kez.u.<hex>.devices.{enroll,list,rename,remove}` (PROTOCOL.md §6.1, §9.3).
//!
//! One record per user in `kez_devices` (key = key hex), changed only by revision
//! compare-and-set so that concurrent requests on any number of workers never lose an update.
//! A device's consumer `<hex>_<device>` exists while the device is in the record; removal marks
//! the record first and deletes the consumer second, and enrolling re-reads the record after
//! creating the consumer, so a remove racing an enroll never leaves a consumer behind.

use bytes::Bytes;
use futures::future::join_all;
use kez_service_kit::kv::unavailable;
use kez_service_kit::svc::{self, parse_json};
use kv_schemas::api::{
    Device, DeviceList, DeviceRecord, EnrollDevice, EnrollReply, MAX_DEVICES, RemoveDevice, RenameDevice,
    check_device_name,
};
use kv_schemas::error::err;
use kv_schemas::subjects::{DeviceId, INBOX_STREAM, device_consumer, inbox_filters};
use kv_schemas::{ErrorCode, KezError, PublicKey, now_ms};
use serde_json::json;
use std::time::Duration;

use async_nats::jetstream::{ErrorCode as JsCode, consumer};

use crate::{Inbox, jsapi, user_token};

/// Removed ids remembered per user (oldest forgotten first); enough for years of normal use
/// while keeping the record far below the bucket's value limit.
const MAX_REMOVED: usize = 512;
/// Attempts at a compare-and-set before giving up (only under heavy concurrent changes).
const CAS_ATTEMPTS: usize = 8;
/// Ack wait, max ack pending and inactivity of device consumers (PROTOCOL.md §9.1).
const ACK_WAIT: Duration = Duration::from_secs(30);
const MAX_ACK_PENDING: i64 = 1_000;
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(60 * 24 * 3600);
/// Bound on the consumer-info lookups of one `list`.
const LIST_INFO_TIMEOUT: Duration = Duration::from_millis(500);

/// The device consumer configuration (PROTOCOL.md §9.1).
pub fn consumer_config(user: &PublicKey, device: &DeviceId) -> consumer::pull::Config {
    let name = device_consumer(user, device);
    consumer::pull::Config {
        durable_name: Some(name.clone()),
        name: Some(name),
        description: Some("kez-chat device".to_owned()),
        filter_subjects: inbox_filters(user).to_vec(),
        deliver_policy: consumer::DeliverPolicy::All,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: MAX_ACK_PENDING,
        inactive_threshold: INACTIVE_THRESHOLD,
        ..Default::default()
    }
}

enum Change<T> {
    /// Write this record and answer `T`.
    Write(DeviceRecord, T),
    /// Nothing to write; answer `T`.
    Keep(T),
}

impl Inbox {
    async fn load(&self, user: &PublicKey) -> Result<(DeviceRecord, Option<u64>), KezError> {
        let entry = self.devices.entry(user.hex()).await.map_err(|e| unavailable("reading devices", e))?;
        match entry {
            Some(e) if matches!(e.operation, async_nats::jetstream::kv::Operation::Put) => {
                let record: DeviceRecord = serde_json::from_slice(&e.value)
                    .map_err(|_| KezError::new(ErrorCode::Internal, "the stored device record is unreadable"))?;
                Ok((record, Some(e.revision)))
            }
            Some(e) => Ok((DeviceRecord::default(), Some(e.revision))),
            None => Ok((DeviceRecord::default(), None)),
        }
    }

    /// Reads the record, applies `f`, writes with compare-and-set; retries on conflict.
    async fn modify<T>(
        &self,
        user: &PublicKey,
        f: impl Fn(DeviceRecord) -> Result<Change<T>, KezError>,
    ) -> Result<T, KezError> {
        for _ in 0..CAS_ATTEMPTS {
            let (record, revision) = self.load(user).await?;
            let (record, answer) = match f(record)? {
                Change::Keep(answer) => return Ok(answer),
                Change::Write(record, answer) => (record, answer),
            };
            let value = svc::to_json(&record, "the device record")?;
            let written = match revision {
                Some(rev) => self.devices.update(user.hex(), value, rev).await.map(|_| ()).map_err(|e| {
                    (e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision, e.to_string())
                }),
                None => self.devices.create(user.hex(), value).await.map(|_| ()).map_err(|e| {
                    (e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists, e.to_string())
                }),
            };
            match written {
                Ok(()) => return Ok(answer),
                Err((true, _)) => continue,
                Err((false, e)) => return Err(unavailable("storing devices", e)),
            }
        }
        Err(err(ErrorCode::Unavailable, "devices changed concurrently too often; try again"))
    }

    async fn ensure_consumer(&self, user: &PublicKey, device: &DeviceId) -> Result<String, KezError> {
        let config = consumer_config(user, device);
        let name = device_consumer(user, device);
        self.inbox_js
            .create_consumer_on_stream(config, INBOX_STREAM)
            .await
            .map_err(|e| kez_service_kit::kv::unavailable("creating the device consumer", e))?;
        Ok(name)
    }

    async fn delete_consumer(&self, user: &PublicKey, device: &DeviceId) -> Result<(), KezError> {
        let name = device_consumer(user, device);
        let r: Result<serde_json::Value, _> =
            jsapi::request(&self.inbox_js, &format!("CONSUMER.DELETE.{INBOX_STREAM}.{name}"), &json!({})).await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.is(JsCode::CONSUMER_NOT_FOUND) => Ok(()),
            Err(e) => Err(e.to_kez("deleting the device consumer")),
        }
    }

    pub(crate) async fn enroll(&self, subject: &str, payload: Bytes) -> Result<Bytes, KezError> {
        let user = user_token(subject)?;
        let q: EnrollDevice = parse_json(&payload)?;
        check_device_name(&q.name)?;
        let (device, created) = self
            .modify(&user, |mut record| {
                if record.removed.contains(&q.device) {
                    return Err(removed());
                }
                if let Some(d) = record.devices.iter().find(|d| d.id == q.device) {
                    return Ok(Change::Keep((d.clone(), false)));
                }
                if record.devices.len() >= MAX_DEVICES {
                    return Err(err(ErrorCode::DeviceLimit, format!("you already have {MAX_DEVICES} devices")));
                }
                let d = Device { id: q.device.clone(), name: q.name.clone(), created_at: now_ms(), last_active: None };
                record.devices.push(d.clone());
                Ok(Change::Write(record, (d, true)))
            })
            .await?;
        // Re-creates a consumer that expired (60 days unused) or was lost; a no-op otherwise.
        let consumer = self.ensure_consumer(&user, &q.device).await?;
        let (record, _) = self.load(&user).await?;
        if !record.devices.iter().any(|d| d.id == q.device) {
            // Removed while we created the consumer: take it away again.
            self.delete_consumer(&user, &q.device).await?;
            return Err(removed());
        }
        svc::json_reply(&EnrollReply { device, consumer, created })
    }

    pub(crate) async fn list(&self, subject: &str, payload: Bytes) -> Result<Bytes, KezError> {
        let user = user_token(subject)?;
        let _: Empty = parse_json(&payload)?;
        let (record, _) = self.load(&user).await?;
        let infos = join_all(record.devices.iter().map(|d| self.last_active(&user, &d.id))).await;
        let devices = record
            .devices
            .into_iter()
            .zip(infos)
            .map(|(d, last_active)| Device { last_active: last_active.or(d.last_active), ..d })
            .collect();
        svc::json_reply(&DeviceList { devices })
    }

    /// When the device's consumer last delivered, if the store answers quickly.
    async fn last_active(&self, user: &PublicKey, device: &DeviceId) -> Option<u64> {
        let name = device_consumer(user, device);
        let subject = format!("CONSUMER.INFO.{INBOX_STREAM}.{name}");
        let body = json!({});
        let call = jsapi::request::<consumer::Info>(&self.inbox_js, &subject, &body);
        let info = tokio::time::timeout(LIST_INFO_TIMEOUT, call).await.ok()?.ok()?;
        let at = info.delivered.last_active?;
        u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
    }

    pub(crate) async fn rename(&self, subject: &str, payload: Bytes) -> Result<Bytes, KezError> {
        let user = user_token(subject)?;
        let q: RenameDevice = parse_json(&payload)?;
        check_device_name(&q.name)?;
        let device = self
            .modify(&user, |mut record| {
                let d = record.devices.iter_mut().find(|d| d.id == q.device).ok_or_else(not_found)?;
                if d.name == q.name {
                    return Ok(Change::Keep(d.clone()));
                }
                d.name = q.name.clone();
                let d = d.clone();
                Ok(Change::Write(record, d))
            })
            .await?;
        svc::json_reply(&json!({ "device": device }))
    }

    pub(crate) async fn remove(&self, subject: &str, payload: Bytes) -> Result<Bytes, KezError> {
        let user = user_token(subject)?;
        let q: RemoveDevice = parse_json(&payload)?;
        self.modify(&user, |mut record| {
            if record.removed.contains(&q.device) {
                // Already removed (e.g. a retry after the consumer delete failed).
                return Ok(Change::Keep(()));
            }
            let before = record.devices.len();
            record.devices.retain(|d| d.id != q.device);
            if record.devices.len() == before {
                return Err(not_found());
            }
            record.removed.push(q.device.clone());
            if record.removed.len() > MAX_REMOVED {
                let excess = record.removed.len() - MAX_REMOVED;
                record.removed.drain(..excess);
            }
            Ok(Change::Write(record, ()))
        })
        .await?;
        self.delete_consumer(&user, &q.device).await?;
        svc::json_reply(&json!({ "removed": true }))
    }
}

/// The `{}` body of `devices.list`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

fn removed() -> KezError {
    err(ErrorCode::DeviceRemoved, "this device was removed and cannot enroll again")
}

fn not_found() -> KezError {
    err(ErrorCode::DeviceNotFound, "no such device")
}
