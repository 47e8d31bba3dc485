//! The box as one value: the parts that run an event — the store, capture
//! files and the uploads in progress, the devices, cloud sync, the pretix
//! lane, the LAN side, the clock and the metrics — composed once by
//! `server::open`. The HTTP layer wraps it (`api::AppState`: sessions,
//! connection budgets, the API's settings); the server's background
//! tasks, the rehearsal and the commands use it without the HTTP layer.

use crate::clock::Clock;
use crate::devices::Devices;
use crate::media::uploads::{Lifecycle, UploadSlots};
use crate::media::MediaFiles;
use crate::metrics::Metrics;
use crate::pretix::PretixHandle;
use crate::store::Store;
use crate::sync::SyncHandle;
use std::sync::Arc;

/// Cheap handles to every part of the box.
#[derive(Clone)]
pub struct Venuebox {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub media: MediaFiles,
    /// Which request holds which upload, and the door's pace for them.
    pub uploads: Arc<UploadSlots>,
    pub devices: Arc<Devices>,
    pub sync: Arc<SyncHandle>,
    /// The pretix lane's settings and status.
    pub pretix: Arc<PretixHandle>,
    /// Certificates, names and fingerprint of the LAN side, when it is on.
    pub lan: Option<Arc<crate::net::Lan>>,
    /// The standby link's settings and status.
    pub replication: Arc<crate::replication::Replication>,
}

impl Venuebox {
    /// The upload life cycle over this box's store, files and slots.
    pub fn uploads_lifecycle(&self) -> Lifecycle<'_> {
        Lifecycle {
            store: &self.store,
            media: &self.media,
            slots: &self.uploads,
            clock: &self.clock,
        }
    }
}
