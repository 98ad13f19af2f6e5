// The binary is the edge: it turns the CLI's code into the exit status.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

fn main() {
    std::process::exit(infra::cli::main())
}
