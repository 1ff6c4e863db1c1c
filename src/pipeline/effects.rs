//! The production effects of `act`: the quarantine holds, the lanes deliver, the audit log
//! records.

use std::sync::Arc;

use smtp_proto::{RcptTo, Response};

use super::act::{Delivers, Holds, Records};
use crate::audit::{AuditError, AuditLog, Record};
use crate::quarantine::{Item, Quarantine, StoreError};
use crate::relay::{self, Envelope, Lanes, Relayed};
use crate::spool::SpooledBody;

impl Holds for Quarantine {
    async fn put(
        &self,
        item: &Item,
        trace: &[u8],
        body: &mut SpooledBody,
    ) -> Result<(), StoreError> {
        Quarantine::put(self, item, trace, body).await
    }
    async fn remove(&self, id: &str) -> Result<(), StoreError> {
        Quarantine::withdraw(self, id).await
    }
}

impl Delivers for Lanes {
    type Staged = relay::Staged;
    fn default_name(&self) -> String {
        self.default.clone()
    }
    async fn stage(
        &self,
        lane: &str,
        helo: &str,
        env: &Envelope,
        trace: &[u8],
        body: &mut SpooledBody,
    ) -> Option<Result<relay::Staged, Relayed>> {
        let lane = self.get(lane)?;
        Some(relay::stage(&lane, helo, env, trace, body).await)
    }
    async fn commit(&self, staged: relay::Staged) -> Relayed {
        relay::commit(staged).await
    }
    async fn relay(
        &self,
        lane: &str,
        helo: &str,
        env: &Envelope,
        trace: &[u8],
        body: &mut SpooledBody,
    ) -> Option<Relayed> {
        let lane = self.get(lane)?;
        Some(relay::relay(&lane, helo, env, trace, body).await)
    }
    async fn bounce(
        &self,
        helo: &str,
        env: &Envelope,
        failures: &[(RcptTo<String>, Response<String>)],
        body: &mut SpooledBody,
    ) {
        relay::dsn::send_failure_notice(&self.default_lane(), helo, env, failures, body).await
    }
}

impl Records for Arc<AuditLog> {
    async fn append(&self, records: &[Record]) -> Result<(), AuditError> {
        self.append_async(records).await
    }

    async fn append_lazy(&self, records: &[Record]) -> Result<(), AuditError> {
        self.append_async_lazy(records).await
    }
}
