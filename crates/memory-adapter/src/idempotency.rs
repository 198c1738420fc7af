use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::Error;
use domain::idempotency::{Claim, IdempotencyKey, IdempotencyStore, StoredResponse};
use time::OffsetDateTime;

#[derive(Debug)]
struct Record {
    fingerprint: [u8; 32],
    response: Option<StoredResponse>,
    created_at: OffsetDateTime,
}

/// An [`IdempotencyStore`] in a map guarded by a mutex.
#[derive(Debug, Default)]
pub struct MemoryIdempotencyStore {
    records: Mutex<HashMap<IdempotencyKey, Record>>,
}

impl MemoryIdempotencyStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &[u8; 32],
        expires_before: OffsetDateTime,
        stale_before: OffsetDateTime,
    ) -> Result<Claim, Error> {
        let mut records = crate::lock(&self.records);
        // Expired records go on every claim, which bounds the map by the traffic of one
        // expiry period.
        records.retain(|_, r| r.created_at >= expires_before);
        if let Some(record) = records.get(key) {
            let abandoned = record.response.is_none() && record.created_at < stale_before;
            if !abandoned {
                return Ok(if record.fingerprint != *fingerprint {
                    Claim::Mismatch
                } else if let Some(response) = &record.response {
                    Claim::Replay(response.clone())
                } else {
                    Claim::InProgress
                });
            }
        }
        records.insert(
            key.clone(),
            Record {
                fingerprint: *fingerprint,
                response: None,
                created_at: domain::now(),
            },
        );
        Ok(Claim::New)
    }

    async fn complete(&self, key: &IdempotencyKey, response: &StoredResponse) -> Result<(), Error> {
        if let Some(record) = crate::lock(&self.records).get_mut(key) {
            record.response = Some(response.clone());
        }
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey) -> Result<(), Error> {
        let mut records = crate::lock(&self.records);
        if records.get(key).is_some_and(|r| r.response.is_none()) {
            records.remove(key);
        }
        Ok(())
    }
}
