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
