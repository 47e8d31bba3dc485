//! `venuebox devices`: the USB scanners and printers and the GPIO signals
//! this machine has, and a test of each.

use super::load_devices;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
pub struct DevicesArgs {
    #[command(subcommand)]
    pub action: Option<DevicesCommand>,
    /// Device configuration (JSON), as for serve.
    #[arg(long, env = "VENUEBOX_DEVICES")]
    pub devices: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum DevicesCommand {
    /// Blink the LEDs, beep, pulse the relay and print a test page on every printer.
    Test,
}

pub async fn run(args: DevicesArgs) -> Result<()> {
    let DevicesArgs { action, devices } = args;
    let config = load_devices(devices.as_deref())?;
    match venuebox::devices::usb::list(&config).await {
        Ok(list) if list.is_empty() => println!("no USB scanners or printers found"),
        Ok(list) => {
            for (port, name, role) in list {
                println!("{port:<10} {name:<50} {role}");
            }
        }
        Err(e) => println!("USB unavailable: {e}"),
    }
    match venuebox::devices::signals::RppalGpio::open(&config.gpio) {
        Ok(g) => {
            println!("{}", venuebox::devices::signals::Gpio::describe(&g));
            if matches!(action, Some(DevicesCommand::Test)) {
                let s = venuebox::devices::signals::Signaller::new(
                    std::sync::Arc::new(g),
                    config.gpio.clone(),
                );
                s.self_test();
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                println!("GPIO: green, red, buzzer and relay switched; watch the door");
            }
        }
        Err(e) => println!("GPIO unavailable: {e}"),
    }
    if matches!(action, Some(DevicesCommand::Test)) {
        let n = venuebox::devices::usb::print_test_pages().await?;
        println!("test page sent to {n} printer(s)");
    }
    Ok(())
}
