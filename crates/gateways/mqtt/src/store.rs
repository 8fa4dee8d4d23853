//! What a persistent MQTT session needs remembered beyond its queue, durable on a
//! [`KeyedStore`] (a compacted internal topic) keyed by client id:
//!
//! - its expiry and when its last connection ended, so the gateway ends it on time (MQTT 5's
//!   Session Expiry Interval, changeable at DISCONNECT) even across restarts;
//! - the QoS 2 messages it has released (PUBREC received, PUBREL sent), so PUBREL is sent again
//!   after a reconnect, even after kill -9, and the message itself never is: the record is
//!   committed before the queue message is acknowledged and before PUBREL leaves, which is what
//!   makes QoS 2 exactly once across a broker crash.
//!
//! A clean session (expiry 0) has no record. A record's `released` entries are dropped in
//! memory at PUBCOMP and written with the session's next change: a PUBREL sent again for a
//! completed exchange is answered with PUBCOMP by the client, harmlessly.

use std::sync::Arc;

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use parking_lot::Mutex;
use porter_core::keyed_store::{KeyedLimits, KeyedStore};
use porter_core::partition::now_ms;
use porter_core::{Broker, CoreError};
use serde::{Deserialize, Serialize};

/// The internal topic holding MQTT session records.
pub const SESSIONS_TOPIC: &str = "__porter_mqtt_sessions";

/// One released QoS 2 message: its queue, its offset there, its packet id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Released {
    pub queue: String,
    pub offset: i64,
    pub packet_id: u16,
}

/// One shared subscription of a session (`$share/<group>/<filter>`), kept in the session's
/// record: its queue's binding is the group's, shared by every member, so it cannot say which
/// sessions subscribed or with which options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SharedSubscription {
    /// The filter as the client sent it, `$share/<group>/` included.
    pub path: String,
    pub qos: u8,
    #[serde(default)]
    pub retain_as_published: bool,
    #[serde(default)]
    pub id: Option<usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub expiry_secs: u32,
    /// When the last connection ended (ms since the epoch); `None` while one is open.
    #[serde(default)]
    pub ended_ms: Option<i64>,
    #[serde(default)]
    pub released: Vec<Released>,
    /// Its shared subscriptions, restored when the session resumes.
    #[serde(default)]
    pub shared: Vec<SharedSubscription>,
    /// Its will, waiting out the Will Delay Interval after the connection ended (a delayed
    /// will needs a session expiry, so it always has a record to live in): armed again at
    /// start, so a restart during the delay does not drop it.
    #[serde(default)]
    pub will: Option<StoredWill>,
    /// Packet ids of QoS 2 publishes the client sent, routed and answered with PUBREC, whose
    /// PUBREL has not come: a re-sent PUBLISH with one of them is not routed again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub received_qos2: Vec<u16>,
}

/// A delayed will as its session's record keeps it (see [`crate::will`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredWill {
    /// When it is due (ms since the epoch).
    pub due_ms: i64,
    pub topic: String,
    #[serde(with = "hex")]
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    #[serde(default)]
    pub payload_format_indicator: Option<u8>,
    #[serde(default)]
    pub message_expiry_interval: Option<u32>,
    #[serde(default)]
    pub response_topic: Option<String>,
    #[serde(default, with = "hex_option")]
    pub correlation_data: Option<Vec<u8>>,
    #[serde(default)]
    pub user_properties: Vec<(String, String)>,
    #[serde(default)]
    pub content_type: Option<String>,
}

/// Bytes in a JSON record as hex: twice their size, where a JSON array of numbers takes up to
/// four times.
mod hex {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        decode(&text).ok_or_else(|| D::Error::custom("not hex"))
    }

    pub use porter_core::hex::{decode, encode};
}

mod hex_option {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_some(&super::hex::encode(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            Some(text) => super::hex::decode(&text)
                .map(Some)
                .ok_or_else(|| D::Error::custom("not hex")),
            None => Ok(None),
        }
    }
}

impl SessionRecord {
    /// Whether the session has expired at `now_ms` (a session whose connection is open never
    /// has).
    pub fn expired(&self, now_ms: i64) -> bool {
        self.deadline().is_some_and(|deadline| deadline <= now_ms)
    }

    /// When the session expires (ms since the epoch), if its connection has ended.
    pub fn deadline(&self) -> Option<i64> {
        self.ended_ms
            .map(|ended| ended + i64::from(self.expiry_secs) * 1000)
    }
}

/// Ended sessions by expiry deadline, so the expiry sweep looks at due ones only instead of
/// decoding every record each time.
#[derive(Default)]
struct Deadlines {
    by_time: BTreeSet<(i64, String)>,
    by_client: HashMap<String, i64>,
}

impl Deadlines {
    fn set(&mut self, client_id: &str, deadline: Option<i64>) {
        if let Some(old) = self.by_client.remove(client_id) {
            self.by_time.remove(&(old, client_id.to_string()));
        }
        if let Some(deadline) = deadline {
            self.by_client.insert(client_id.to_string(), deadline);
            self.by_time.insert((deadline, client_id.to_string()));
        }
    }
}

pub(crate) struct SessionStore {
    store: Arc<KeyedStore>,
    deadlines: Mutex<Deadlines>,
}

impl SessionStore {
    pub async fn open(broker: &Arc<Broker>, limits: KeyedLimits) -> Result<Self, CoreError> {
        let store = KeyedStore::open(broker, SESSIONS_TOPIC, limits).await?;
        let mut deadlines = Deadlines::default();
        for (client_id, bytes) in store.entries() {
            if let Ok(record) = serde_json::from_slice::<SessionRecord>(&bytes) {
                deadlines.set(&client_id, record.deadline());
            }
        }
        Ok(SessionStore {
            store,
            deadlines: Mutex::new(deadlines),
        })
    }

    pub fn get(&self, client_id: &str) -> Option<SessionRecord> {
        let bytes = self.store.get(client_id)?;
        match serde_json::from_slice(&bytes) {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::warn!(%client_id, error = %e, "unreadable MQTT session record; ignoring it");
                None
            }
        }
    }

    pub async fn put(&self, client_id: &str, record: &SessionRecord) -> Result<(), CoreError> {
        let bytes = serde_json::to_vec(record).expect("records serialise");
        self.store.put(client_id, Bytes::from(bytes)).await?;
        self.deadlines.lock().set(client_id, record.deadline());
        Ok(())
    }

    pub async fn remove(&self, client_id: &str) -> Result<(), CoreError> {
        self.store.remove(client_id).await?;
        self.deadlines.lock().set(client_id, None);
        Ok(())
    }

    /// Client ids whose sessions have expired by now (sessions without a connection).
    pub fn expired(&self) -> Vec<String> {
        let now = now_ms();
        self.deadlines
            .lock()
            .by_time
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, client_id)| client_id.clone())
            .collect()
    }

    /// Sessions whose connection was open when the broker stopped: their connection ended at
    /// start-up, which starts their expiry.
    pub async fn end_open_sessions(&self) -> Result<usize, CoreError> {
        let now = now_ms();
        let mut ended = 0;
        for (client_id, bytes) in self.store.entries() {
            let Ok(mut record) = serde_json::from_slice::<SessionRecord>(&bytes) else {
                continue;
            };
            if record.ended_ms.is_none() {
                record.ended_ms = Some(now);
                self.put(&client_id, &record).await?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// The delayed wills the records hold (at start: to arm them again).
    pub fn pending_wills(&self) -> Vec<(String, StoredWill)> {
        self.store
            .entries()
            .into_iter()
            .filter_map(|(client_id, bytes)| {
                let record = serde_json::from_slice::<SessionRecord>(&bytes).ok()?;
                Some((client_id, record.will?))
            })
            .collect()
    }

    /// Drops the delayed will due at `due_ms` from `client_id`'s record once it was sent (a
    /// record that moved on, a new connection's, is left alone).
    pub async fn will_sent(&self, client_id: &str, due_ms: i64) -> Result<(), CoreError> {
        let Some(mut record) = self.get(client_id) else {
            return Ok(());
        };
        if record.will.as_ref().is_none_or(|w| w.due_ms != due_ms) {
            return Ok(());
        }
        record.will = None;
        self.put(client_id, &record).await
    }

    pub fn len(&self) -> usize {
        self.store.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_with_a_delayed_will_round_trips_and_old_records_still_read() {
        let record = SessionRecord {
            expiry_secs: 60,
            ended_ms: Some(1_000),
            will: Some(StoredWill {
                due_ms: 4_000,
                topic: "presence/a".into(),
                payload: vec![0, 1, 0xfe, 0xff],
                qos: 1,
                retain: true,
                payload_format_indicator: Some(1),
                message_expiry_interval: None,
                response_topic: None,
                correlation_data: Some(vec![7, 8]),
                user_properties: vec![("k".into(), "v".into())],
                content_type: Some("text/plain".into()),
            }),
            ..SessionRecord::default()
        };
        let json = serde_json::to_vec(&record).unwrap();
        assert!(String::from_utf8_lossy(&json).contains("\"0001feff\""));
        assert_eq!(
            serde_json::from_slice::<SessionRecord>(&json).unwrap(),
            record
        );
        // A record written before wills (and shared subscriptions) were kept.
        let old: SessionRecord =
            serde_json::from_slice(br#"{"expiry_secs":5,"ended_ms":null,"released":[]}"#).unwrap();
        assert_eq!((old.will, old.shared.len()), (None, 0));
        assert!(serde_json::from_str::<StoredWill>(
            r#"{"due_ms":1,"topic":"t","payload":"abc","qos":0,"retain":false}"#
        )
        .is_err());
    }
}
