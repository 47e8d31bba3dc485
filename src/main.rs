//! `venuebox`: the box at the venue. The command line lives in `cli/`,
//! everything it runs in the library.

mod cli;

fn main() -> anyhow::Result<()> {
    venuebox::secrets::private_by_default();
    cli::main()
}
