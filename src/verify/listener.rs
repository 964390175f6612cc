//! The receiving side of revocation: each instance's listener on a PostgreSQL database.
//!
//! The write path (`crate::revocation`) forgets the affected cache entries of this instance before the
//! console answers, and sends the key ids with `NOTIFY` inside the change's transaction. Every other
//! instance's listener thread polls for them several times a second and forgets them too. On a
//! reconnect the listener clears the whole cache, since notifications may have been missed; cache
//! entries also expire after a minute, the last safety net. SQLite has one instance: no listener.

use std::sync::Weak;
use std::time::{Duration, Instant};

use diesel::prelude::*;

use crate::revocation::{CHANNEL, Revoked};
use crate::verify::Verifier;

/// How often the listener looks for notifications: well within the promised one second.
const POLL: Duration = Duration::from_millis(200);
/// How often the listener checks that its connection is alive.
const HEALTH_CHECK: Duration = Duration::from_secs(5);

/// Starts the listener thread for a PostgreSQL database. It stops by itself once the verifier is
/// dropped (the server has shut down).
pub fn spawn_listener(database_url: String, verifier: Weak<Verifier>) {
    let spawned = std::thread::Builder::new()
        .name("bms-revocations".to_owned())
        .spawn(move || listen(&database_url, &verifier));
    if let Err(e) = spawned {
        tracing::error!("cannot start the revocation listener: {e}");
    }
}

fn listen(url: &str, verifier: &Weak<Verifier>) {
    while verifier.strong_count() > 0 {
        match diesel::PgConnection::establish(url) {
            Ok(mut conn) => {
                if let Err(e) = diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn) {
                    tracing::warn!("revocation listener cannot LISTEN: {e}");
                } else if let Some(v) = verifier.upgrade() {
                    // Changes may have happened while we were not listening.
                    v.cache.clear();
                    drop(v);
                    poll(&mut conn, verifier);
                }
            }
            Err(e) => tracing::warn!("revocation listener cannot connect: {e}"),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Receives notifications until the connection fails or the verifier is gone.
fn poll(conn: &mut diesel::PgConnection, verifier: &Weak<Verifier>) {
    let mut checked = Instant::now();
    loop {
        std::thread::sleep(POLL);
        let Some(v) = verifier.upgrade() else { return };
        if checked.elapsed() >= HEALTH_CHECK {
            if diesel::sql_query("SELECT 1").execute(conn).is_err() {
                return;
            }
            checked = Instant::now();
        }
        let mut changed: Vec<String> = Vec::new();
        for notification in conn.notifications_iter() {
            match notification {
                Ok(n) => changed.push(n.payload),
                Err(e) => {
                    tracing::warn!("revocation listener lost its connection: {e}");
                    return;
                }
            }
        }
        v.forget(&Revoked::keys(changed.iter().map(String::as_str)));
        drop(v);
    }
}
