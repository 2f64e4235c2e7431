//! The `herald` command line and headless relay.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
