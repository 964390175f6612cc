//! Counters shared by every instance, on a Redis-protocol server (`--redis-url`): per-key rate
//! limits, the verification failure limiter and the sign-in throttle. Every change is an atomic
//! server-side script (`INCRBY`, the GCRA step), never a read followed by a write.
//!
//! The verification path never waits for the store: it decides on this instance's counters, and the
//! sync loop (`spawn_sync`) sends what it admitted and counted every 100 ms and takes back the totals
//! of all instances. Sign-in asks the store directly (it is slow anyway, and an attacker must not
//! get a batch's worth of guesses). When the store cannot be reached, everything falls back to this
//! instance's own counters: logged once when it goes and once when it is back, counted in metrics.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::{Connection, RedisResult, Script};

use super::keys::{KeyLimiter, Pending};
use crate::throttle::FailureThrottle;

/// How often an instance adds its counts to the store and takes back the totals.
pub const SYNC_EVERY: Duration = Duration::from_millis(100);
/// How long one command may take before the store counts as down.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, no new connection is tried for this long (a store that is down must not cost
/// every sign-in a connect timeout).
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Adds `n` requests to a key's GCRA arrival time (on the store's clock) and answers how far ahead
/// of now it runs, in microseconds.
const GCRA_ADD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
tat = tat + tonumber(ARGV[1]) * tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
return tat - now
";

/// Adds `n` to a counter that lives `ARGV[2]` milliseconds from its first count; answers the count
/// and the milliseconds left.
const COUNT_ADD: &str = r"
local c = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {c, ttl}
";

/// The store's connection, health and scripts.
pub struct SharedStore {
    client: redis::Client,
    conn: Mutex<Option<Connection>>,
    /// No connection is tried before this instant (after a failure).
    quiet_until: Mutex<Option<Instant>>,
    up: AtomicBool,
    /// Operations answered from local counters because the store could not be reached.
    fallbacks: AtomicU64,
    gcra_add: Script,
    count_add: Script,
}

impl SharedStore {
    /// A store at `url` (`redis://host:port/db`); connects on first use.
    pub fn new(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis-url: {e}"))?;
        Ok(Self {
            client,
            conn: Mutex::new(None),
            quiet_until: Mutex::new(None),
            up: AtomicBool::new(true),
            fallbacks: AtomicU64::new(0),
            gcra_add: Script::new(GCRA_ADD),
            count_add: Script::new(COUNT_ADD),
        })
    }

    /// Whether the last operation reached the store.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Runs `f` on the connection (opened if needed); `None` when the store cannot be reached.
    /// Blocking: call it from the sync thread or the blocking pool, never an async worker.
    fn run<T>(&self, f: impl FnOnce(&mut Connection) -> RedisResult<T>) -> Option<T> {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let mut quiet = self.quiet_until.lock().unwrap_or_else(|p| p.into_inner());
            if quiet.is_some_and(|until| Instant::now() < until) {
                drop(quiet);
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            match self.connect() {
                Ok(conn) => *slot = Some(conn),
                Err(e) => {
                    *quiet = Some(Instant::now() + RECONNECT_AFTER);
                    drop(quiet);
                    self.went_down(&e);
                    return None;
                }
            }
        }
        let conn = slot.as_mut()?;
        match f(conn) {
            Ok(value) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("shared store reachable again: limits are shared");
                }
                Some(value)
            }
            Err(e) => {
                *slot = None;
                drop(slot);
                *self.quiet_until.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Instant::now() + RECONNECT_AFTER);
                self.went_down(&e);
                None
            }
        }
    }

    /// A new connection with the scripts loaded (pipelines invoke them by hash only; a server that
    /// restarted has forgotten them, and its connections broke, so every new one loads them).
    fn connect(&self) -> RedisResult<Connection> {
        let mut conn = self.client.get_connection_with_timeout(COMMAND_TIMEOUT)?;
        conn.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        conn.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        self.gcra_add.load(&mut conn)?;
        self.count_add.load(&mut conn)?;
        Ok(conn)
    }

    /// Checks that the store answers (the sync loop's turn when there was nothing to send), so that
    /// its health is known while nobody is counting.
    pub fn ping(&self) {
        self.run(|conn| redis::cmd("PING").exec(conn));
    }

    fn went_down(&self, e: &redis::RedisError) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!("shared store unreachable, counting on this instance only: {e}");
        }
    }

    /// Adds what each key admitted; answers, per key, how far its arrival time runs ahead of now
    /// and today's total (where it has those limits).
    pub fn add_key_usage(&self, pending: &[Pending]) -> Option<Vec<(Option<i64>, Option<u64>)>> {
        if pending.is_empty() {
            return Some(Vec::new());
        }
        self.run(|conn| {
            let mut pipe = redis::pipe();
            for p in pending {
                if let Some(gcra) = p.gcra {
                    pipe.invoke_script(
                        self.gcra_add
                            .key(format!("bms:rate:{}:tat", p.key))
                            .arg(gcra.interval)
                            .arg(p.minute),
                    );
                }
                if let Some(day) = p.day {
                    pipe.invoke_script(
                        self.count_add
                            .key(format!("bms:rate:{}:day:{day}", p.key))
                            .arg(p.day_count)
                            .arg(2 * 86_400_000),
                    );
                }
            }
            let mut answers: std::collections::VecDeque<redis::Value> =
                pipe.query::<Vec<redis::Value>>(conn)?.into();
            let mut out = Vec::with_capacity(pending.len());
            for p in pending {
                let ahead = match p.gcra {
                    Some(_) => Some(redis::from_redis_value::<i64>(
                        answers.pop_front().unwrap_or(redis::Value::Nil),
                    )?),
                    None => None,
                };
                let day = match p.day {
                    Some(_) => Some(
                        redis::from_redis_value::<(u64, i64)>(
                            answers.pop_front().unwrap_or(redis::Value::Nil),
                        )?
                        .0,
                    ),
                    None => None,
                };
                out.push((ahead, day));
            }
            Ok(out)
        })
    }

    /// Adds failures to counters of `scope` that live `window` from their first failure; answers
    /// each counter's total and the time left in its window.
    pub fn add_failures(
        &self,
        scope: &str,
        counts: &[(String, u32)],
        window: Duration,
    ) -> Option<Vec<(u32, Duration)>> {
        if counts.is_empty() {
            return Some(Vec::new());
        }
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.run(|conn| {
            let mut pipe = redis::pipe();
            for (key, n) in counts {
                pipe.invoke_script(
                    self.count_add
                        .key(format!("bms:fail:{scope}:{key}"))
                        .arg(*n)
                        .arg(window_ms),
                );
            }
            let answers: Vec<(u64, i64)> = pipe.query(conn)?;
            Ok(answers
                .into_iter()
                .map(|(count, ttl)| {
                    (
                        u32::try_from(count).unwrap_or(u32::MAX),
                        Duration::from_millis(u64::try_from(ttl.max(0)).unwrap_or(0)),
                    )
                })
                .collect())
        })
    }

    /// A counter's total and the time left in its window (`(0, 0)` when it has none).
    pub fn failures(&self, scope: &str, key: &str) -> Option<(u32, Duration)> {
        self.run(|conn| {
            let name = format!("bms:fail:{scope}:{key}");
            let (count, ttl): (Option<u64>, i64) =
                redis::pipe().get(&name).pttl(&name).query(conn)?;
            Ok((
                u32::try_from(count.unwrap_or(0)).unwrap_or(u32::MAX),
                Duration::from_millis(u64::try_from(ttl.max(0)).unwrap_or(0)),
            ))
        })
    }

    /// Forgets a counter (after a successful sign-in).
    pub fn reset_failures(&self, scope: &str, key: &str) {
        self.run(|conn| {
            redis::cmd("DEL")
                .arg(format!("bms:fail:{scope}:{key}"))
                .exec(conn)
        });
    }
}

/// What the sync loop keeps in step with the store.
pub struct Synced {
    pub keys: Weak<KeyLimiter>,
    pub failures: Weak<FailureThrottle<IpAddr>>,
    /// The failure counters' window.
    pub failure_window: Duration,
}

/// Starts the thread that shares this instance's counts every `SYNC_EVERY`; it stops once the
/// counters are dropped (the server has shut down).
pub fn spawn_sync(store: Arc<SharedStore>, synced: Synced) {
    let spawned = std::thread::Builder::new()
        .name("bms-shared-limits".to_owned())
        .spawn(move || {
            let mut idle_turns = 0u32;
            while let (Some(keys), Some(failures)) =
                (synced.keys.upgrade(), synced.failures.upgrade())
            {
                if sync_once(&store, &keys, &failures, synced.failure_window) {
                    idle_turns = 0;
                } else {
                    idle_turns += 1;
                    if idle_turns >= IDLE_PING_TURNS {
                        idle_turns = 0;
                        store.ping();
                    }
                }
                drop((keys, failures));
                std::thread::sleep(SYNC_EVERY);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the shared-limits sync: {e}");
    }
}

/// Turns without anything to send before the loop checks the store's health.
const IDLE_PING_TURNS: u32 = 10;

/// One turn: send what was counted here, take back every instance's totals. Answers whether there
/// was anything to send.
pub fn sync_once(
    store: &SharedStore,
    keys: &KeyLimiter,
    failures: &FailureThrottle<IpAddr>,
    failure_window: Duration,
) -> bool {
    let pending = keys.take_pending();
    if let Some(totals) = store.add_key_usage(&pending) {
        for (p, (ahead, day)) in pending.iter().zip(totals) {
            keys.absorb(&p.key, ahead, p.day.zip(day));
        }
    }
    let counted: Vec<(String, u32)> = failures
        .take_pending()
        .into_iter()
        .map(|(ip, n)| (ip.to_string(), n))
        .collect();
    if let Some(totals) = store.add_failures("verify", &counted, failure_window) {
        for ((ip, _), (total, left)) in counted.iter().zip(totals) {
            if let Ok(ip) = ip.parse::<IpAddr>() {
                failures.absorb(&ip, total, left);
            }
        }
    }
    !pending.is_empty() || !counted.is_empty()
}
