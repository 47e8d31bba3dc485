//! Manifest updates from the cloud: the organiser publishes a signed
//! manifest at `manifests/event=<id>/manifest.json` (+ `.json.sig`) in the
//! bucket, or at an HTTPS URL (+ `.sig`). The box polls it and imports it
//! through the same path as `venuebox manifest import`: signature checks,
//! newer versions only, atomically; check-ins, sales and claims are never
//! touched. An admin can freeze updates (during doors, say).

use super::s3::S3Error;
use super::{Syncer, FREEZE_SETTING};
use crate::domain::role::{Actor, Role};
use crate::store::{ImportOutcome, StoreError};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The last bytes looked at, so a rejected manifest is reported once.
#[derive(Default)]
pub struct Seen {
    /// SHA-256 over the manifest and its signature.
    sha256: Option<[u8; 32]>,
    /// Entity tag of the last manifest applied, for a conditional GET.
    etag: Option<String>,
    /// The last poll failed (network): the next good one clears it.
    failed: bool,
}

/// A manifest published without its signature.
fn missing_sig(e: S3Error) -> S3Error {
    match e {
        S3Error::NotFound => S3Error::Permanent(
            "the published manifest has no signature next to it (manifest.json.sig): sign it with venuebox manifest sign and publish both".into(),
        ),
        e => e,
    }
}

impl Syncer {
    /// The published manifest and its signature, or `None` when there is
    /// none or it has not changed since the last look (a 304: polling
    /// costs the uplink nothing while nothing changes).
    async fn fetch_manifest(
        &self,
        event_id: &str,
    ) -> Result<Option<(Bytes, String, String)>, S3Error> {
        let etag = self.manifest_seen.lock().expect("manifest lock").etag.clone();
        let fetched = match &self.config.manifest_url {
            Some(url) => {
                let mut sig_url = url.clone();
                sig_url.set_path(&format!("{}.sig", url.path()));
                match self.s3.get_url_fresh(url, etag.as_deref()).await {
                    Ok(Some((body, tag))) => Some((
                        body,
                        self.s3.get_url_fresh(&sig_url, None).await.map_err(missing_sig)?,
                        tag,
                    )),
                    Ok(None) | Err(S3Error::NotFound) => None,
                    Err(e) => return Err(e),
                }
            }
            None => {
                let key = self.s3.key(&format!("manifests/event={event_id}/manifest.json"));
                match self.s3.get_fresh(&key, etag.as_deref()).await {
                    Ok(Some((body, tag))) => Some((
                        body,
                        self.s3
                            .get_fresh(&format!("{key}.sig"), None)
                            .await
                            .map_err(missing_sig)?,
                        tag,
                    )),
                    Ok(None) | Err(S3Error::NotFound) => None,
                    Err(e) => return Err(e),
                }
            }
        };
        let Some((body, sig, tag)) = fetched else {
            return Ok(None);
        };
        let sig = sig.map(|(b, _)| b).unwrap_or_default();
        Ok(Some((body, String::from_utf8_lossy(&sig).trim().to_string(), tag)))
    }

    /// Looks for a newer manifest and imports it. Returns what happened
    /// (for tests and `sync now`); failures are recorded, never fatal.
    pub async fn manifest_step(&self) -> Option<ImportOutcome> {
        self.handle.update(|l| l.manifest_checks += 1);
        let ev = self.store.event()?;
        if self.store.setting(FREEZE_SETTING).await.ok().flatten().as_deref() == Some("true") {
            return None;
        }
        let fetched = match self.fetch_manifest(ev.event_id().as_str()).await {
            Ok(f) => {
                if std::mem::take(&mut self.manifest_seen.lock().expect("manifest lock").failed) {
                    self.record("manifest", Ok(())).await;
                }
                f?
            }
            Err(e) => {
                tracing::debug!(error = %e, "manifest poll failed; the next poll tries again");
                self.manifest_seen.lock().expect("manifest lock").failed = true;
                self.record("manifest", Err(&e.into())).await;
                return None;
            }
        };
        let (body, sig, tag) = fetched;
        // The pair is what counts: the same manifest with a corrected
        // signature is looked at again.
        let digest: [u8; 32] =
            Sha256::new().chain_update(&body).chain_update(sig.as_bytes()).finalize().into();
        {
            let mut seen = self.manifest_seen.lock().expect("manifest lock");
            if seen.sha256 == Some(digest) {
                return None;
            }
            seen.sha256 = Some(digest);
        }
        let actor = Actor { name: "cloud-sync".into(), role: Role::Admin };
        match self
            .store
            .import_manifest(body.to_vec(), Some(sig), self.pinned.clone(), actor, self.clock.now())
            .await
        {
            Ok(outcome) => {
                // Only an applied (or already loaded) manifest is worth a
                // 304 next time; a refused one is fetched whole again, as
                // its signature may be fixed alone.
                self.manifest_seen.lock().expect("manifest lock").etag = Some(tag);
                if let ImportOutcome::Imported { event_id, version, tickets, .. } = &outcome {
                    tracing::info!(event = %event_id, version, tickets, "newer manifest from the cloud applied");
                }
                self.record("manifest", Ok(())).await;
                Some(outcome)
            }
            Err(e @ (StoreError::Manifest(_) | StoreError::Invalid { .. })) => {
                tracing::warn!(error = %e, "the cloud's manifest was not applied; the loaded one stays");
                self.record(
                    "manifest",
                    Err(&super::SyncError::Local(format!("manifest not applied: {e}"))),
                )
                .await;
                None
            }
            Err(e) => {
                let mut seen = self.manifest_seen.lock().expect("manifest lock");
                (seen.sha256, seen.etag) = (None, None);
                tracing::warn!(error = %e, "cannot import the cloud's manifest now; will retry");
                None
            }
        }
    }
}
