//! Which device does what: scanners to gates and directions, printers to
//! stations, and the GPIO pins. Read from a JSON file (`--devices FILE`);
//! without one, any HID scanner goes to the event's first gate and any
//! printer-class device prints receipts at the default station.

use super::signals::GpioConfig;
use crate::domain::checkin::Direction;
use serde::{Deserialize, Serialize};

/// How to recognise a device; every field given must match.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeviceMatch {
    /// Vendor id, 4 hex digits.
    #[serde(default)]
    pub vid: Option<String>,
    #[serde(default)]
    pub pid: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    /// USB port path as sysfs names it, e.g. `1-1.2` (bus-port.port).
    #[serde(default)]
    pub port: Option<String>,
}

/// What the adapter knows of a plugged-in device, for matching.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub vid: u16,
    pub pid: u16,
    pub serial: Option<String>,
    pub port: String,
}

impl DeviceMatch {
    pub fn matches(&self, d: &Seen) -> bool {
        let hex = |v: &Option<String>, x: u16| {
            v.as_ref().is_none_or(|s| u16::from_str_radix(s, 16).ok() == Some(x))
        };
        hex(&self.vid, d.vid)
            && hex(&self.pid, d.pid)
            && self.serial.as_ref().is_none_or(|s| d.serial.as_deref() == Some(s.as_str()))
            && self.port.as_ref().is_none_or(|p| *p == d.port)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerRule {
    #[serde(rename = "match", default)]
    pub matcher: DeviceMatch,
    /// Gate id; `None` means the event's first gate.
    #[serde(default)]
    pub gate: Option<String>,
    #[serde(default = "entry")]
    pub direction: Direction,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub suffix: String,
    /// For scanners set to send no Enter after a code.
    #[serde(default)]
    pub inter_key_timeout_ms: Option<u64>,
}

fn entry() -> Direction {
    Direction::Entry
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterRule {
    #[serde(rename = "match", default)]
    pub matcher: DeviceMatch,
    #[serde(default = "default_station")]
    pub station: String,
    /// Characters per line: 32 for 58 mm paper, 42 or 48 for 80 mm.
    #[serde(default = "default_width")]
    pub width: usize,
}

fn default_station() -> String {
    crate::store::printing::DEFAULT_STATION.to_string()
}

fn default_width() -> usize {
    42
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesConfig {
    #[serde(default)]
    pub scanners: Vec<ScannerRule>,
    #[serde(default)]
    pub printers: Vec<PrinterRule>,
    #[serde(default)]
    pub gpio: GpioConfig,
}

impl DevicesConfig {
    pub fn load(path: &std::path::Path) -> Result<DevicesConfig, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a valid device configuration: {e}", path.display()))
    }

    /// The rule for a scanner: the first that matches, else the default.
    pub fn scanner(&self, d: &Seen) -> ScannerRule {
        self.scanners.iter().find(|r| r.matcher.matches(d)).cloned().unwrap_or(ScannerRule {
            matcher: DeviceMatch::default(),
            gate: None,
            direction: Direction::Entry,
            prefix: String::new(),
            suffix: String::new(),
            inter_key_timeout_ms: None,
        })
    }

    pub fn printer(&self, d: &Seen) -> PrinterRule {
        self.printers.iter().find(|r| r.matcher.matches(d)).cloned().unwrap_or(PrinterRule {
            matcher: DeviceMatch::default(),
            station: default_station(),
            width: default_width(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_ids_serial_or_port_and_fall_back_to_defaults() {
        let cfg: DevicesConfig = serde_json::from_str(
            r##"{"scanners": [
                  {"match": {"vid": "05e0", "pid": "1200", "serial": "S1"}, "gate": "vip", "direction": "exit"},
                  {"match": {"port": "1-1.3"}, "gate": "side", "prefix": "#"}],
                "printers": [{"match": {"vid": "04b8"}, "station": "merch", "width": 32}],
                "gpio": {"green": 5, "led_ms": 400}}"##,
        )
        .unwrap();
        let seen = |vid, pid, serial: Option<&str>, port: &str| Seen {
            vid,
            pid,
            serial: serial.map(String::from),
            port: port.into(),
        };
        assert_eq!(
            cfg.scanner(&seen(0x05e0, 0x1200, Some("S1"), "1-1")).gate.as_deref(),
            Some("vip")
        );
        assert_eq!(
            cfg.scanner(&seen(0x05e0, 0x1200, Some("S1"), "1-1")).direction,
            Direction::Exit
        );
        assert_eq!(
            cfg.scanner(&seen(0x05e0, 0x1200, Some("S2"), "1-1.3")).gate.as_deref(),
            Some("side"),
            "serial differs, port matches"
        );
        assert_eq!(cfg.scanner(&seen(0x1234, 0x1, None, "2-1")).gate, None, "default: first gate");
        assert_eq!(cfg.printer(&seen(0x04b8, 0x0e28, None, "1-2")).station, "merch");
        assert_eq!(cfg.printer(&seen(0x0416, 0x5011, None, "1-2")).station, "default");
        assert_eq!((cfg.gpio.green, cfg.gpio.led_ms, cfg.gpio.red), (5, 400, 27));
        assert!(
            serde_json::from_str::<DevicesConfig>(r#"{"scaners": []}"#).is_err(),
            "typos are refused"
        );
    }
}
