//! What devices the box has right now and how they are, for staff
//! (`GET /api/v1/devices`) and for `venuebox devices`.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Clone, Debug, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct DeviceState {
    pub id: String,
    /// scanner, printer or gpio.
    pub kind: String,
    pub name: String,
    /// What it is bound to: "gate main (entry)", "station default"...
    pub role: String,
    /// connected, ready, needs_attention, disconnected or unavailable.
    pub status: String,
    /// What staff should do, when something is wrong.
    pub detail: Option<String>,
}

#[derive(Default)]
pub struct Registry {
    /// Devices by id; disconnected ones stay listed so staff see what left.
    devices: Mutex<BTreeMap<String, DeviceState>>,
}

impl Registry {
    pub fn set(&self, state: DeviceState) {
        self.devices.lock().expect("registry").insert(state.id.clone(), state);
    }

    pub fn update(&self, id: &str, status: &str, detail: Option<String>) {
        if let Some(d) = self.devices.lock().expect("registry").get_mut(id) {
            d.status = status.to_string();
            d.detail = detail;
        }
    }

    pub fn list(&self) -> Vec<DeviceState> {
        self.devices.lock().expect("registry").values().cloned().collect()
    }
}
