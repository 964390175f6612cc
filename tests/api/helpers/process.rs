//! The real binary as an operator runs it: `bms-keys user add` and `bms-keys serve` on a data
//! directory, for the tests that `kill -9` a server and start it again on the same files.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::PASSWORD;

/// `bms-keys user add` an owner with the tests' password.
pub fn add_user_with_cli(data_dir: &Path, email: &str, account: &str) {
    let mut add = Command::new(env!("CARGO_BIN_EXE_bms-keys"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["user", "add", "--email", email, "--account", account])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run bms-keys user add");
    add.stdin
        .take()
        .expect("its stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("the password");
    assert!(add.wait().expect("user add ends").success());
}

/// `bms-keys serve` on the data directory and port, with `extra` flags; returns once it accepts
/// connections.
pub fn serve_with_cli(data_dir: &Path, port: u16, extra: &[&str]) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_bms-keys"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bms-keys");
    wait_for_port(port, "the server");
    child
}

/// Returns once something accepts connections on the loopback port (at most 20 seconds).
pub fn wait_for_port(port: u16, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
