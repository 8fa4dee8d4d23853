//! The broker's calls for Kafka ACLs and client quotas: a snapshot to authorise against (published after each
//! change, so no request waits for the metadata lock), and changes as metadata commands.

use std::sync::Arc;

use crate::acl::{AclBinding, AclChange, AclFilter, Acls};
use crate::error::Result;
use crate::metadata::MetadataCommand;
use crate::partition::run_blocking;

use super::Broker;

impl Broker {
    /// The ACLs now.
    pub fn acls(&self) -> Arc<Acls> {
        self.acls.read().clone()
    }

    /// Creates `bindings` (those already there stay as they are).
    pub async fn create_acls(self: &Arc<Self>, bindings: Vec<AclBinding>) -> Result<()> {
        self.change_acls(AclChange::Create { bindings }).await
    }

    /// Deletes the bindings each filter matches; returns them, per filter.
    pub async fn delete_acls(
        self: &Arc<Self>,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<Vec<AclBinding>>> {
        let this = self.clone();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            let acls = &metadata.state().acls;
            let matched: Vec<Vec<AclBinding>> = filters.iter().map(|f| acls.matching(f)).collect();
            let bindings: Vec<AclBinding> = matched.iter().flatten().cloned().collect();
            if !bindings.is_empty() {
                metadata.submit(MetadataCommand::Acl {
                    change: AclChange::Delete { bindings },
                })?;
                *this.acls.write() = Arc::new(metadata.state().acls.clone());
            }
            Ok(matched)
        })
        .await
    }

    async fn change_acls(self: &Arc<Self>, change: AclChange) -> Result<()> {
        let this = self.clone();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            metadata.submit(MetadataCommand::Acl { change })?;
            *this.acls.write() = Arc::new(metadata.state().acls.clone());
            tracing::info!(
                acls = metadata.state().acls.bindings.len(),
                "Kafka ACLs changed"
            );
            Ok(())
        })
        .await
    }

    /// The client quotas now.
    pub fn client_quotas(&self) -> Arc<crate::quota::ClientQuotas> {
        self.quotas.read().clone()
    }

    /// Applies `change` to the client quotas.
    pub async fn alter_client_quota(
        self: &Arc<Self>,
        change: crate::quota::QuotaChange,
    ) -> Result<()> {
        let this = self.clone();
        run_blocking(move || {
            let mut metadata = this.metadata.lock();
            metadata.submit(MetadataCommand::Quota { change })?;
            *this.quotas.write() = Arc::new(metadata.state().quotas.clone());
            Ok(())
        })
        .await
    }
}
