//! The `spate` binary: parses arguments and hands over to the library.

fn main() -> std::process::ExitCode {
    spate_broker::cli::main()
}
