//! The test harness, by concern: `app` (the application and its database), `browser` (an HTTP client
//! with a cookie jar), `journeys` (what users do, through the real forms), `receiver` (the webhook receiver), `process` (the real binary), `scraping` (reading pages)
//! and `sweeps` (walking the route table). The contract's URLs are in `crate::paths`.

mod app;
mod browser;
mod journeys;
mod process;
mod receiver;
mod scraping;
mod sweeps;

pub use app::*;
pub use browser::*;
pub use journeys::*;
pub use process::*;
pub use receiver::*;
pub use scraping::*;
pub use sweeps::*;
