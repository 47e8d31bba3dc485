//! The door's lights and sounds: green and red LEDs, a buzzer, a door or
//! turnstile relay, and a button, behind the [`Gpio`] trait. `RppalGpio`
//! drives a Raspberry Pi's pins; `FakeGpio` records what would have
//! happened, for tests, benchmarks and `serve --simulate`.

use super::DeviceError;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    Green,
    Red,
    Buzzer,
    Relay,
}

/// Switching outputs and reading the button; nothing else touches pins.
pub trait Gpio: Send + Sync + 'static {
    fn set(&self, out: Output, on: bool) -> Result<(), DeviceError>;
    /// Whether the button is pressed now.
    fn button(&self) -> Result<bool, DeviceError>;
    fn describe(&self) -> String;
}

/// BCM pin numbers and how long each signal lasts.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpioConfig {
    pub green: u8,
    pub red: u8,
    pub buzzer: u8,
    pub relay: u8,
    pub button: u8,
    /// LED on-time after a verdict.
    pub led_ms: u64,
    pub beep_admit_ms: u64,
    pub beep_reject_ms: u64,
    /// Door or turnstile release on admit.
    pub relay_pulse_ms: u64,
}

impl Default for GpioConfig {
    fn default() -> Self {
        GpioConfig {
            green: 17,
            red: 27,
            buzzer: 22,
            relay: 23,
            button: 24,
            led_ms: 1000,
            beep_admit_ms: 80,
            beep_reject_ms: 600,
            relay_pulse_ms: 500,
        }
    }
}

/// Turns verdicts into light, sound and the door relay.
#[derive(Clone)]
pub struct Signaller {
    gpio: Arc<dyn Gpio>,
    config: GpioConfig,
}

impl Signaller {
    pub fn new(gpio: Arc<dyn Gpio>, config: GpioConfig) -> Self {
        Signaller { gpio, config }
    }

    pub fn describe(&self) -> String {
        self.gpio.describe()
    }

    pub fn button(&self) -> Result<bool, DeviceError> {
        self.gpio.button()
    }

    /// Green + short beep + relay pulse, or red + long beep. The outputs go
    /// on at once; a task switches them off after their time.
    pub fn verdict(&self, admit: bool) {
        let c = &self.config;
        let plan: Vec<(Output, u64)> = if admit {
            vec![
                (Output::Green, c.led_ms),
                (Output::Buzzer, c.beep_admit_ms),
                (Output::Relay, c.relay_pulse_ms),
            ]
        } else {
            vec![(Output::Red, c.led_ms), (Output::Buzzer, c.beep_reject_ms)]
        };
        self.pulse(plan);
    }

    /// `venuebox devices test`: every output once, in turn.
    pub fn self_test(&self) {
        let c = &self.config;
        self.pulse(vec![
            (Output::Green, 300),
            (Output::Red, 300),
            (Output::Buzzer, c.beep_admit_ms),
            (Output::Relay, c.relay_pulse_ms),
        ]);
    }

    fn pulse(&self, plan: Vec<(Output, u64)>) {
        for (out, _) in &plan {
            if let Err(e) = self.gpio.set(*out, true) {
                tracing::warn!(output = ?out, error = %e, "cannot switch output on");
            }
        }
        let gpio = self.gpio.clone();
        let off = move || {
            let mut plan = plan;
            plan.sort_by_key(|p| p.1);
            let start = Instant::now();
            for (out, ms) in plan {
                let wait = Duration::from_millis(ms).saturating_sub(start.elapsed());
                std::thread::sleep(wait);
                if let Err(e) = gpio.set(out, false) {
                    tracing::warn!(output = ?out, error = %e, "cannot switch output off");
                }
            }
        };
        // Off-switching waits; it must never hold up the next scan.
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(off);
            }
            Err(_) => {
                std::thread::spawn(off);
            }
        }
    }
}

/// What a fake output did, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpioEvent {
    pub at: Instant,
    pub output: Output,
    pub on: bool,
}

/// Records every switch; tests read the events back.
#[derive(Default)]
pub struct FakeGpio {
    events: Mutex<Vec<GpioEvent>>,
    /// Wakes tests waiting for a signal.
    changed: tokio::sync::Notify,
    pressed: std::sync::atomic::AtomicBool,
}

impl FakeGpio {
    pub fn events(&self) -> Vec<GpioEvent> {
        self.events.lock().expect("fake gpio").clone()
    }

    /// Waits (up to `timeout`) for `out` to be switched on after `since`.
    pub async fn wait_on(
        &self,
        out: Output,
        since: Instant,
        timeout: Duration,
    ) -> Option<GpioEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(e) =
                self.events().into_iter().find(|e| e.output == out && e.on && e.at >= since)
            {
                return Some(e);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    pub fn press(&self, down: bool) {
        self.pressed.store(down, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Gpio for FakeGpio {
    fn set(&self, output: Output, on: bool) -> Result<(), DeviceError> {
        {
            let mut ev = self.events.lock().expect("fake gpio");
            // A simulated box runs for days: keep the recent past only.
            if ev.len() >= 4096 {
                ev.drain(..2048);
            }
            ev.push(GpioEvent { at: Instant::now(), output, on });
        }
        self.changed.notify_waiters();
        tracing::debug!(?output, on, "fake gpio");
        Ok(())
    }
    fn button(&self) -> Result<bool, DeviceError> {
        Ok(self.pressed.load(std::sync::atomic::Ordering::SeqCst))
    }
    fn describe(&self) -> String {
        "simulated GPIO (no pins)".into()
    }
}

/// A Raspberry Pi's GPIO through rppal.
pub struct RppalGpio {
    /// One lock per output pin: rppal pins need `&mut` to switch.
    outputs: Vec<(Output, Mutex<rppal::gpio::OutputPin>)>,
    button: rppal::gpio::InputPin,
    config: GpioConfig,
}

impl RppalGpio {
    pub fn open(config: &GpioConfig) -> Result<RppalGpio, DeviceError> {
        let gpio = rppal::gpio::Gpio::new().map_err(|e| {
            DeviceError::Unavailable(format!(
                "GPIO: {e} (not a Raspberry Pi, or no access to /dev/gpiomem)"
            ))
        })?;
        let pin =
            |n: u8| gpio.get(n).map_err(|e| DeviceError::Unavailable(format!("GPIO pin {n}: {e}")));
        let outputs = [
            (Output::Green, config.green),
            (Output::Red, config.red),
            (Output::Buzzer, config.buzzer),
            (Output::Relay, config.relay),
        ]
        .into_iter()
        .map(|(o, n)| Ok((o, Mutex::new(pin(n)?.into_output_low()))))
        .collect::<Result<Vec<_>, DeviceError>>()?;
        Ok(RppalGpio {
            outputs,
            button: pin(config.button)?.into_input_pullup(),
            config: config.clone(),
        })
    }
}

impl Gpio for RppalGpio {
    fn set(&self, out: Output, on: bool) -> Result<(), DeviceError> {
        let (_, pin) =
            self.outputs.iter().find(|(o, _)| *o == out).expect("every output has a pin");
        let mut pin = pin.lock().expect("gpio pin");
        if on {
            pin.set_high()
        } else {
            pin.set_low()
        }
        Ok(())
    }
    fn button(&self) -> Result<bool, DeviceError> {
        // Pulled up: pressed connects the pin to ground.
        Ok(self.button.is_low())
    }
    fn describe(&self) -> String {
        let c = &self.config;
        format!(
            "Raspberry Pi GPIO: green {} red {} buzzer {} relay {} button {}",
            c.green, c.red, c.buzzer, c.relay, c.button
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_admit_lights_green_beeps_short_pulses_the_relay_and_all_go_off() {
        let gpio = Arc::new(FakeGpio::default());
        let cfg =
            GpioConfig { led_ms: 30, beep_admit_ms: 10, relay_pulse_ms: 20, ..Default::default() };
        let s = Signaller::new(gpio.clone(), cfg);
        let t0 = Instant::now();
        s.verdict(true);
        let on: Vec<Output> = gpio.events().iter().filter(|e| e.on).map(|e| e.output).collect();
        assert_eq!(
            on,
            [Output::Green, Output::Buzzer, Output::Relay],
            "on at once, before verdict() returns"
        );
        let off = gpio.wait_off_all(t0).await;
        assert_eq!(off, [Output::Buzzer, Output::Relay, Output::Green], "shortest first");
    }

    #[tokio::test]
    async fn a_reject_lights_red_with_a_long_beep_and_no_relay() {
        let gpio = Arc::new(FakeGpio::default());
        Signaller::new(
            gpio.clone(),
            GpioConfig { led_ms: 20, beep_reject_ms: 10, ..Default::default() },
        )
        .verdict(false);
        let on: Vec<Output> = gpio.events().iter().filter(|e| e.on).map(|e| e.output).collect();
        assert_eq!(on, [Output::Red, Output::Buzzer]);
    }

    impl FakeGpio {
        async fn wait_off_all(&self, since: Instant) -> Vec<Output> {
            for _ in 0..100 {
                let ev = self.events();
                let on = ev.iter().filter(|e| e.on && e.at >= since).count();
                let off: Vec<Output> =
                    ev.iter().filter(|e| !e.on && e.at >= since).map(|e| e.output).collect();
                if off.len() == on {
                    return off;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("outputs never went off: {:?}", self.events());
        }
    }
}
