//! Where argon2 runs: a few dedicated threads, one per core, instead of whichever blocking thread
//! asked. Each hash fills 19 MiB; glibc keeps freed memory in the arena of the thread that used it, so
//! hashing on the (up to hundreds of) blocking threads made the server's memory climb with every new
//! thread that signed someone in. On a fixed set of threads it stays flat, and a burst of sign-ins
//! queues instead of running dozens of 19 MiB hashes at once.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, LazyLock, Mutex};

type Job = Box<dyn FnOnce() + Send>;

static QUEUE: LazyLock<Sender<Job>> = LazyLock::new(|| {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for i in 0..threads {
        let receiver = receiver.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("bms-argon2-{i}"))
            .spawn(move || work(&receiver));
        if let Err(e) = spawned {
            tracing::error!("cannot start a password-hashing thread: {e}");
        }
    }
    sender
});

fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        let job = match receiver.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Runs `hash` on a hashing thread and waits for it (call it from a blocking thread, never from an
/// async worker). `None` if it panicked or no hashing thread could be started.
pub fn run<T: Send + 'static>(hash: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, result) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        if let Ok(value) = catch_unwind(AssertUnwindSafe(hash)) {
            let _ = done.send(value);
        }
    });
    QUEUE.send(job).ok()?;
    result.recv().ok()
}
