//! Posture assessments as the running gateway uses them: cached, with concurrent lookups of
//! one domain coalesced. One instance is shared by the decisions, the TLS policy socketmap
//! and the re-check before a release, so all three see the same judgement.

use std::sync::Arc;

use super::dns::Dns;
use super::ladder::{Assessment, PostureCache, ProbeOptions, assess};

pub struct Postures {
    pub cache: PostureCache,
    pub dns: Arc<Dns>,
    pub probe: ProbeOptions,
}

impl Postures {
    /// The assessment of `domain`: cached, or made now (once, whoever asks meanwhile).
    pub async fn of(&self, domain: &str) -> Arc<Assessment> {
        self.cache
            .get(domain, || async {
                let started = std::time::Instant::now();
                let a = assess(
                    &*self.dns,
                    &super::probe::StartTlsProber,
                    domain,
                    &self.probe,
                )
                .await;
                crate::metrics::posture_lookup(a.posture.name(), started.elapsed());
                tracing::info!(%domain, posture = %a.posture, "recipient domain assessed");
                a
            })
            .await
    }

    /// The postures of a configuration, with a cache of its own.
    pub fn from_config(config: &crate::config::Config) -> Result<Postures, String> {
        let p = &config.posture;
        Ok(Postures {
            cache: PostureCache::new(p.cache_lifetime, p.failure_lifetime, p.max_domains),
            dns: Arc::new(Dns::new(&config.dns).map_err(|e| e.to_string())?),
            probe: ProbeOptions::from_config(config, None)?,
        })
    }
}
