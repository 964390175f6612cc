//! The `bms-keys` command line: `serve`, `migrate`, `user add`, `demo`. Flags and their environment
//! variables are listed in `config.rs`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Settings;
use crate::error::AppError;
use crate::onboarding::{self, NewMember};
use crate::startup::{self, Application};
use crate::trusted_proxies::TrustedProxies;
use crate::users::{Role, User};

#[derive(Debug, Parser)]
#[command(
    name = "bms-keys",
    version,
    about = "BMS console: Permissions → API Keys"
)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the data lives; every subcommand takes these.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// SQLite file path or postgres:// URL [default: <data dir>/bms.db]
    #[arg(long, env = "BMS_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Directory for the SQLite database and generated key material
    #[arg(long, env = "BMS_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// A policy catalogue TOML file to use instead of the embedded one
    #[arg(long, env = "BMS_POLICY_CATALOGUE", global = true)]
    pub policy_catalogue: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web console and the verification API
    Serve(ServeArgs),
    /// Apply pending database migrations and exit
    Migrate,
    /// Manage console users
    #[command(subcommand)]
    User(UserCommand),
    /// Create a demo account with users to click through
    Demo,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on
    #[arg(long, env = "BMS_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// HTTP worker threads [default: one per core]
    #[arg(long, env = "BMS_WORKERS")]
    pub workers: Option<usize>,
    /// The URL users reach the console at; https:// makes cookies Secure
    #[arg(long, env = "BMS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Your own reverse proxies and gateways (addresses or networks, comma-separated): only from these
    /// peers is the client's address taken from X-Forwarded-For (its right-most untrusted entry)
    #[arg(long, env = "BMS_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: TrustedProxies,
    /// Seconds a client has to send a request's body before the connection is closed with 408
    #[arg(long, env = "BMS_BODY_TIMEOUT", default_value_t = 10)]
    pub body_timeout: u64,
    /// Most open connections per worker; more wait in the listen queue
    #[arg(long, env = "BMS_MAX_CONNECTIONS_PER_WORKER", default_value_t = crate::config::MAX_CONNECTIONS_PER_WORKER)]
    pub max_connections_per_worker: usize,
    /// Failed verifications per client per minute before its cache misses go through the slow lane
    #[arg(long, env = "BMS_VERIFY_FAILURES_PER_MINUTE", default_value_t = crate::verify::FAILURES_PER_IP_PER_MINUTE)]
    pub verify_failures_per_minute: u32,
    /// GitHub's secret-scanning key set (the JSON of https://api.github.com/meta/public_keys/secret_scanning),
    /// to accept its leak alerts at /v1/secret-scanning/github
    #[arg(long, env = "BMS_GITHUB_KEYS_FILE")]
    pub github_keys_file: Option<std::path::PathBuf>,
    /// GitHub's secret-scanning key set by URL (https://api.github.com/meta/public_keys/secret_scanning),
    /// fetched at start-up and again, at most once a minute, for a key it does not have yet
    #[arg(long, env = "BMS_GITHUB_KEYS_URL", conflicts_with = "github_keys_file")]
    pub github_keys_url: Option<String>,
    /// Let webhook endpoints use plain http:// (for a receiver on your own network; events are then
    /// sent unencrypted)
    #[arg(long, env = "BMS_WEBHOOKS_ALLOW_HTTP")]
    pub webhooks_allow_http: bool,
    /// Let webhook endpoints resolve to loopback, private and link-local addresses (for a receiver on
    /// your own network)
    #[arg(long, env = "BMS_WEBHOOKS_ALLOW_PRIVATE")]
    pub webhooks_allow_private: bool,
    /// Seconds one webhook delivery attempt may take (connecting, sending, the answer) before it
    /// counts as failed and is retried
    #[arg(long, env = "BMS_WEBHOOKS_TIMEOUT", default_value_t = 10)]
    pub webhooks_timeout: u64,
    /// A Redis-protocol server (redis://host:port/db) where every instance adds up per-key rate
    /// limits, the sign-in throttle and the failure limiter [default: each instance counts alone]
    #[arg(long, env = "BMS_REDIS_URL")]
    pub redis_url: Option<String>,
    /// The share of a key's per-minute limit that may come at once (at least one request)
    #[arg(long, env = "BMS_RATE_LIMIT_BURST", default_value_t = crate::limits::DEFAULT_BURST_SHARE)]
    pub rate_limit_burst: f64,
    /// Do not LISTEN for revocations (for a pooler that cannot, such as PgBouncer in transaction
    /// mode): they then reach this instance by the revocation log alone, within 250 ms
    #[arg(long, env = "BMS_NO_REVOCATION_LISTENER")]
    pub no_revocation_listener: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user to an account (created if no account has that name); the password is read from stdin
    Add(UserAddArgs),
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    #[arg(long)]
    pub email: String,
    /// Account name; created when none has it
    #[arg(long)]
    pub account: String,
    #[arg(long, value_parser = ["owner", "viewer"], default_value = "owner")]
    pub role: String,
    /// Make the user support staff (can open every account)
    #[arg(long)]
    pub staff: bool,
    /// Display name [default: the part of the email before @]
    #[arg(long)]
    pub name: Option<String>,
}

impl Cli {
    fn settings(&self, serve: Option<&ServeArgs>) -> Settings {
        let database_url = self
            .db
            .database_url
            .clone()
            .unwrap_or_else(|| Settings::default_database_url(&self.db.data_dir));
        let bind = serve.map_or_else(|| "127.0.0.1:8080".to_owned(), |s| s.bind.clone());
        let public_url = serve
            .and_then(|s| s.public_url.clone())
            .unwrap_or_else(|| format!("http://{bind}"));
        Settings {
            workers: serve
                .and_then(|s| s.workers)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
            trusted_proxies: serve.map(|s| s.trusted_proxies.clone()).unwrap_or_default(),
            body_timeout: std::time::Duration::from_secs(
                serve.map_or(crate::config::BODY_TIMEOUT_SECONDS, |s| s.body_timeout),
            ),
            max_connections_per_worker: serve
                .map_or(crate::config::MAX_CONNECTIONS_PER_WORKER, |s| {
                    s.max_connections_per_worker
                }),
            public_url: public_url.trim_end_matches('/').to_owned(),
            bind,
            database_url,
            data_dir: self.db.data_dir.clone(),
            policy_catalogue: self.db.policy_catalogue.clone(),
            key_material: crate::keystore::KeyMaterialSource::from_env(),
            verify_failures_per_minute: serve
                .map_or(crate::verify::FAILURES_PER_IP_PER_MINUTE, |s| {
                    s.verify_failures_per_minute
                }),
            github_keys: serve.and_then(|s| {
                use crate::secret_scanning::KeySource;
                s.github_keys_file
                    .clone()
                    .map(KeySource::File)
                    .or_else(|| s.github_keys_url.clone().map(KeySource::Url))
            }),
            redis_url: serve.and_then(|s| s.redis_url.clone()),
            revocation_listener: serve.is_none_or(|s| !s.no_revocation_listener),
            rate_limit_burst: serve.map_or(crate::limits::DEFAULT_BURST_SHARE, |s| {
                s.rate_limit_burst.clamp(0.0, 1.0)
            }),
            webhooks: crate::webhooks::DeliverySettings {
                policy: crate::webhooks::TargetPolicy {
                    allow_http: serve.is_some_and(|s| s.webhooks_allow_http),
                    allow_private: serve.is_some_and(|s| s.webhooks_allow_private),
                },
                timeout: std::time::Duration::from_secs(
                    serve.map_or(10, |s| s.webhooks_timeout.max(1)),
                ),
                ..Default::default()
            },
        }
    }
}

/// Runs the command; the error, if any, is printed by `main` with its causes.
pub fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match &cli.command {
        Command::Serve(args) => serve(cli.settings(Some(args))),
        Command::Migrate => {
            let settings = cli.settings(None);
            startup::open_database(&settings)?;
            println!("Database is up to date: {}", describe_database(&settings));
            Ok(())
        }
        Command::User(UserCommand::Add(args)) => add_user(&cli.settings(None), args),
        Command::Demo => crate::demo::run(&cli.settings(None)),
    }
}

/// Where the data is, for messages; a PostgreSQL URL is shown without its password.
fn describe_database(settings: &Settings) -> String {
    match crate::db::Backend::of_url(&settings.database_url) {
        crate::db::Backend::Sqlite => format!("SQLite at {}", settings.database_url),
        crate::db::Backend::Postgres => {
            let url = &settings.database_url;
            let host = url.rsplit('@').next().unwrap_or(url);
            format!(
                "PostgreSQL at {}",
                host.trim_start_matches("postgres://")
                    .trim_start_matches("postgresql://")
            )
        }
    }
}

fn serve(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let public_url = settings.public_url.clone();
    let database = describe_database(&settings);
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        println!("bms-keys is serving the console at {public_url}/ ({database})");
        if let Some(token) = app.state().setup.token() {
            // Printed, never logged: the access log redacts `token=` too.
            println!("First run: no user exists yet. Create the first owner and account at:");
            println!("    {public_url}{}?token={token}", crate::web::urls::SETUP);
            println!(
                "(or run `bms-keys user add --email you@example.com --account \"Your company\"`)"
            );
        }
        app.run_until_stopped().await?;
        Ok(())
    })
}

/// Reads one line from stdin: the password (never a flag, so it stays out of shell history and `ps`).
fn read_password() -> Result<String, Box<dyn std::error::Error>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password for the new user (at least 10 characters), then Enter: ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn add_user(settings: &Settings, args: &UserAddArgs) -> Result<(), Box<dyn std::error::Error>> {
    let pool = startup::open_database(settings)?;
    let mut conn = pool.get()?;
    let existing = User::find_by_email(&mut conn, &args.email)?;
    let password = if existing.is_some() {
        String::new()
    } else {
        read_password()?
    };
    let display_name = args
        .name
        .clone()
        .unwrap_or_else(|| args.email.split('@').next().unwrap_or("").to_owned());
    let new = NewMember {
        email: args.email.clone(),
        display_name,
        password,
        account_name: args.account.clone(),
        role: Role::parse(&args.role),
        is_staff: args.staff,
    };
    let problems: Vec<_> = onboarding::problems(&new)
        .into_iter()
        .filter(|(field, _)| existing.is_none() || *field != "password")
        .map(|(field, problem)| format!("{field}: {problem}"))
        .collect();
    if !problems.is_empty() {
        return Err(problems.join("\n").into());
    }
    let added = onboarding::add_member(&mut conn, &new, "command line").map_err(|e| match e {
        AppError::Conflict(m) => m.into(),
        other => Box::<dyn std::error::Error>::from(other.to_string()),
    })?;
    println!(
        "{} {} as {} of account {} ({}){}",
        if added.created_user {
            "Created user"
        } else {
            "Added existing user"
        },
        added.user.email,
        args.role,
        added.account.name,
        added.account.id,
        if added.created_account {
            ", a new account"
        } else {
            ""
        }
    );
    Ok(())
}
