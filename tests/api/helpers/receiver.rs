//! The webhook receiver of the tests: `scripts/webhook-receiver.py`, which checks every event with the
//! Standard Webhooks reference library from PyPI (`BMS_TEST_WEBHOOK_PYTHON` names a Python that has
//! it), driven over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::Browser;

/// One event as the receiver got it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Received {
    pub name: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Per configured secret: "ok", or the library's error.
    pub verified: Vec<String>,
    pub status: u16,
    pub body: String,
}

impl Received {
    pub fn verified_by_all(&self) -> bool {
        !self.verified.is_empty() && self.verified.iter().all(|v| v == "ok")
    }

    pub fn payload(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON payload")
    }
}

pub struct Receiver {
    child: Child,
    pub port: u16,
}

impl Receiver {
    pub fn start() -> Receiver {
        let python = std::env::var("BMS_TEST_WEBHOOK_PYTHON")
            .expect("BMS_TEST_WEBHOOK_PYTHON names a Python with the standardwebhooks package");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/webhook-receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the webhook receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("the receiver prints its port");
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("a port, not {line:?}"));
        Receiver { child, port }
    }

    /// A new client per call: one awc client kept for the receiver's life failed now and then with
    /// "connector has been disconnected" (its pool against Python's HTTP/1.0 server, which closes
    /// each connection); a fresh client has not, in repeated runs.
    fn client(&self) -> Browser {
        Browser::for_address(&format!("http://127.0.0.1:{}", self.port))
    }

    /// The URL events for `name` are sent to.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/hooks/{name}", self.port)
    }

    /// Sets what `name` does: its secrets, failures, redirect, delay (see the script).
    pub async fn configure(&self, name: &str, config: serde_json::Value) {
        let res = self
            .client()
            .request(
                "PUT",
                &format!("/_control/{name}"),
                &[("content-type", "application/json")],
                Some(config.to_string()),
            )
            .await;
        assert_eq!(res.status.as_u16(), 204, "{}", res.body);
    }

    /// Everything received for `name`, in order.
    pub async fn log(&self, name: &str) -> Vec<Received> {
        let res = self.client().get("/_log").await;
        let all: Vec<Received> = serde_json::from_str(&res.body).expect("the receiver's log");
        all.into_iter().filter(|r| r.name == name).collect()
    }

    /// Waits (up to `limit`) until `name`'s log satisfies `done`, and returns it.
    pub async fn wait_for(
        &self,
        name: &str,
        limit: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let log = self.log(name).await;
            if done(&log) {
                return log;
            }
            assert!(
                started.elapsed() < limit,
                "the receiver's log for {name} after {limit:?}: {log:#?}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
