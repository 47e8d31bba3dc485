//! What is plugged into the box: USB QR scanners, USB receipt printers,
//! GPIO lights, buzzer, relay and button.
//!
//! Protocol code is pure and works on bytes (`hid`, `serial`, `escpos`);
//! `signals` is the GPIO trait with its fake and its rppal adapter. Only
//! this module's adapters touch USB or GPIO.

pub mod config;
pub mod escpos;
pub mod hid;
pub mod pipeline;
pub mod printing;
pub mod registry;
pub mod serial;
pub mod signals;
pub mod usb;

/// Errors at the device boundary, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device or bus is not there (no USB, no GPIO, unplugged).
    #[error("{0}")]
    Unavailable(String),
    /// The device is there but a transfer failed.
    #[error("{0}")]
    Io(String),
}

use config::DevicesConfig;
use pipeline::ScanPipeline;
use printing::FakePrinter;
use registry::Registry;
use signals::FakeGpio;
use std::sync::Arc;

/// How the box meets hardware.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// No device tasks (library tests): lights are recorded, nothing prints.
    #[default]
    Off,
    /// `serve --simulate`: fake lights, receipts written to files, scans
    /// injected over the API.
    Simulate,
    /// Real USB and GPIO; what is missing is reported, the box runs anyway.
    Hardware,
}

/// The box's devices, shared by the API and the device tasks.
pub struct Devices {
    pub mode: Mode,
    pub config: Arc<DevicesConfig>,
    pub pipeline: Arc<ScanPipeline>,
    pub registry: Arc<Registry>,
    /// Set when the lights are simulated (tests read what they did).
    pub fake_gpio: Option<Arc<FakeGpio>>,
    /// Set in simulate mode: the printer that writes receipts to files.
    pub fake_printer: Option<Arc<FakePrinter>>,
}
