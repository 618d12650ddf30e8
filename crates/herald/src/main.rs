//! The `herald` command: serve the API, migrate the database, create API tokens.

mod backup;
mod config;
mod doctor;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{Config, redact_url};
use herald_core::Role;
use herald_engine::{Clock, SystemClock};
use herald_store::{NewToken, Store};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Proactive outreach by SMS, email, voice and web chat"
)]
struct Cli {
    /// Configuration file (default: herald.toml in the working directory, when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL; overrides the configuration (sqlite://herald.db, postgres://...).
    #[arg(
        long,
        global = true,
        env = "HERALD_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the HTTP API (migrates the database first).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        bind: Option<SocketAddr>,
        /// Also accept customers' email replies over SMTP on this address (e.g.
        /// 127.0.0.1:2525); off by default.
        #[arg(long, value_name = "ADDR")]
        smtp_bind: Option<SocketAddr>,
    },
    /// Applies pending database migrations and exits.
    Migrate,
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Users of the web UI.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Outreaches: launches of a campaign to a recipient list.
    Outreach {
        #[command(subcommand)]
        command: OutreachCommand,
    },
    /// Copies a live SQLite database to FILE while Herald runs (for PostgreSQL use pg_dump).
    Backup {
        /// The new file to write (it must not exist).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Checks of stored data; they report and change nothing.
    Doctor {
        #[command(subcommand)]
        command: DoctorCommand,
    },
}

#[derive(Subcommand)]
enum DoctorCommand {
    /// Lists recipients, customers and opt-outs stored under a phone number that Herald's
    /// reading (libphonenumber's) would not give; exits 1 if there are any.
    Phones,
}

#[derive(Subcommand)]
enum OutreachCommand {
    /// Imports a CSV of recipients as a new outreach of a campaign and prints its summary.
    Create {
        /// The campaign's id.
        #[arg(long)]
        campaign: uuid::Uuid,
        /// The recipient list (header row; a `phone` or `email` column; others are variables).
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
        /// When sending may begin (RFC 3339; default now).
        #[arg(long, value_name = "TIME")]
        start: Option<jiff::Timestamp>,
        /// When the outreach ends, whoever was not reached (RFC 3339).
        #[arg(long, value_name = "TIME")]
        end: Option<jiff::Timestamp>,
        /// Region (ISO 3166 alpha-2) for numbers written without +country; default: the
        /// sender number's.
        #[arg(long, value_name = "CC")]
        region: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Creates a token and prints it once; only its hash is stored.
    Create {
        /// A name that says who or what uses the token.
        #[arg(long)]
        name: String,
        /// `admin` changes configuration; `agent` reads and works conversations.
        #[arg(long, default_value = "agent")]
        role: Role,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Creates a user of the web UI: prints a one-time link where they choose their password
    /// (valid 7 days), or with --password-stdin sets the password read from stdin.
    Create {
        /// The user's email (they sign in with it).
        #[arg(long)]
        email: String,
        /// `admin` changes configuration; `agent` reads and works conversations.
        #[arg(long, default_value = "agent")]
        role: Role,
        /// Reads the password (one line, at least 10 characters) from stdin instead of printing
        /// a link.
        #[arg(long)]
        password_stdin: bool,
        /// Where the link points (default: server.public_url, else http://<bind>).
        // The doc comment is the `--help` text, shown as is: `<bind>` is no HTML tag.
        #[allow(rustdoc::invalid_html_tags)]
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
        /// The address `herald serve --bind` listens on, for the link when no public URL is
        /// set (default: server.bind).
        #[arg(long, value_name = "ADDR")]
        bind: Option<SocketAddr>,
    },
}

/// How long the first-admin link printed by `herald serve` works.
const FIRST_ADMIN_LINK_VALID: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);
/// How long a link printed by `herald user create` works.
use herald_server::routes::people::INVITE_LINK_VALID;

fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = herald_store::connect(&cfg.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(&cfg.database_url)))?;
    store.migrate().await.context("database migration failed")?;
    Ok(store)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut cfg = Config::load(cli.config.as_deref())?;
    if let Some(url) = cli.database_url {
        cfg.database_url = url;
    }
    init_tracing(&cfg.log.format);

    match cli.command {
        Command::Serve { bind, smtp_bind } => {
            if let Some(bind) = bind {
                cfg.server.bind = bind;
            }
            if smtp_bind.is_some() {
                cfg.server.smtp_bind = smtp_bind;
            }
            serve(cfg).await
        }
        Command::Migrate => {
            let store = open_store(&cfg).await?;
            println!(
                "database {} ({}) is up to date",
                redact_url(&cfg.database_url),
                store.backend()
            );
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create { name, role },
        } => {
            let name = name.trim().to_string();
            anyhow::ensure!(!name.is_empty(), "--name must not be empty");
            let store = open_store(&cfg).await?;
            let secret = herald_server::auth::generate_token();
            let token = store
                .create_token_audited(
                    &NewToken {
                        name,
                        role,
                        hash_hex: secret.hash_hex.clone(),
                    },
                    &cli_context(),
                )
                .await?;
            eprintln!(
                "Created {} token `{}` ({}). It is shown only this once:",
                token.role, token.name, token.id
            );
            println!("{}", secret.secret);
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    role,
                    password_stdin,
                    public_url,
                    bind,
                },
        } => {
            if let Some(bind) = bind {
                cfg.server.bind = bind;
            }
            if let Some(url) = public_url {
                cfg.server.public_url = Some(url);
            }
            let store = open_store(&cfg).await?;
            create_user(&*store, &cfg, &email, role, password_stdin).await
        }
        Command::Outreach {
            command:
                OutreachCommand::Create {
                    campaign,
                    csv,
                    start,
                    end,
                    region,
                },
        } => {
            let store = open_store(&cfg).await?;
            let limits = cfg.outreaches.import();
            create_outreach(store, campaign, &csv, start, end, region, limits).await
        }
        Command::Backup { to } => {
            let backup = backup::sqlite(&cfg.database_url, &to).await?;
            println!(
                "backed up {} to {} ({} bytes)",
                redact_url(&cfg.database_url),
                to.display(),
                backup.bytes
            );
            Ok(())
        }
        Command::Doctor {
            command: DoctorCommand::Phones,
        } => {
            let store = open_store(&cfg).await?;
            let findings = doctor::phones(&*store).await?;
            for f in &findings {
                println!("{}\t{}\t{}\t{}", f.kind, f.id, f.stored, f.what);
            }
            if findings.is_empty() {
                eprintln!("Every stored phone number reads as it is stored.");
                Ok(())
            } else {
                eprintln!(
                    "{} stored phone number(s) to check (nothing was changed).",
                    findings.len()
                );
                std::process::exit(1)
            }
        }
    }
}

/// A one-time link creating a user (of that email, if given) with `role`: its secret (only the
/// hash is stored).
async fn setup_token(
    store: &dyn Store,
    email: Option<&str>,
    role: Role,
    valid_for: jiff::SignedDuration,
) -> anyhow::Result<String> {
    use herald_server::web::session::{new_secret, secret_hash};
    let secret = new_secret();
    let expires_at = SystemClock.now().checked_add(valid_for)?;
    store
        .create_setup_token(&secret_hash(&secret), email, role, expires_at)
        .await
        .context("cannot store the setup link")?;
    Ok(secret)
}

/// Changes made on the command line, for the audit log.
fn cli_context() -> herald_store::AuditContext {
    herald_store::AuditContext {
        actor: herald_store::Actor::Cli,
        client_addr: None,
        at: SystemClock.now(),
    }
}

/// `herald user create`.
async fn create_user(
    store: &dyn Store,
    cfg: &Config,
    email: &str,
    role: Role,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let email = herald_core::EmailAddress::parse(email)
        .map_err(|e| anyhow::anyhow!("--email: {e}"))?
        .as_str()
        .to_lowercase();
    if !password_stdin {
        // Recorded in the audit log; refused for an email that has an account (deactivated
        // ones included); replaces any earlier link of the email.
        use herald_server::web::session::{new_secret, secret_hash};
        let token = new_secret();
        let expires_at = SystemClock.now().checked_add(INVITE_LINK_VALID)?;
        store
            .invite_user(
                &email,
                role,
                &secret_hash(&token),
                expires_at,
                &cli_context(),
            )
            .await
            .map_err(|e| match e {
                herald_store::StoreError::Conflict(m) => anyhow::anyhow!(m),
                e => anyhow::Error::new(e).context("cannot store the setup link"),
            })?;
        eprintln!(
            "The link works once, for {} days; whoever opens it becomes the {role} {email}. It replaces any earlier link for {email}.",
            INVITE_LINK_VALID.as_hours() / 24
        );
        if cfg.server.public_url.is_none() {
            eprintln!(
                "No server.public_url is set: the link uses the address {}; if herald serve listens elsewhere, pass --bind ADDR or --public-url URL.",
                cfg.server.bind
            );
        }
        println!(
            "Set the password at: {}/setup/{token}",
            cfg.server.public_url()
        );
        return Ok(());
    }
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("cannot read the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']);
    let (problem, _) = herald_server::web::auth::password_errors(password, password);
    if let Some(problem) = problem {
        anyhow::bail!("the password read from stdin is refused: {problem}");
    }
    if store.find_user_by_email(&email).await?.is_some() {
        anyhow::bail!("a user with the email {email} already exists");
    }
    let hash = herald_server::web::auth::hash_password(password);
    let user = store.create_user(&email, role, &hash).await?;
    println!("Created {} user {} ({})", user.role, user.email, user.id);
    Ok(())
}

/// `herald outreach create`: the same import path as the API, with a progress bar on large
/// files and the summary at the end.
async fn create_outreach(
    store: Arc<dyn Store>,
    campaign_id: uuid::Uuid,
    csv: &std::path::Path,
    start: Option<jiff::Timestamp>,
    end: Option<jiff::Timestamp>,
    region: Option<String>,
    limits: herald_engine::ImportLimits,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(csv).with_context(|| format!("cannot open {}", csv.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = if size >= 8 << 20 {
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} importing [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let progress_bar = bar.clone();
    let upload = herald_engine::OutreachUpload {
        campaign_id,
        file,
        file_name: csv
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "recipients.csv".into()),
        start_at: start.unwrap_or_else(|| SystemClock.now()),
        end_at: end,
        default_region: region,
        limits,
    };
    let result = herald_engine::import_outreach(
        store,
        upload,
        Arc::new(move |bytes| progress_bar.set_position(bytes)),
    )
    .await;
    bar.finish_and_clear();
    let outreach = result.map_err(|e| anyhow::anyhow!("{e}"))?;
    let s = &outreach.summary;
    println!("outreach {} ({})", outreach.id, outreach.status);
    println!(
        "rows {}  accepted {}  invalid {}  duplicates {}  suppressed {}  encoding {}",
        s.rows, s.accepted, s.invalid, s.duplicates, s.suppressed, s.encoding
    );
    if s.invalid + s.duplicates > 0 {
        println!(
            "error report: GET /api/v1/outreaches/{}/errors.csv",
            outreach.id
        );
    }
    Ok(())
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let store = open_store(&cfg).await?;
    let public_url = cfg.server.public_url();
    cfg.dispatch
        .rates
        .validate()
        .map_err(|e| anyhow::anyhow!(e))?;
    cfg.dispatch
        .daily_caps
        .validate()
        .map_err(|e| anyhow::anyhow!(e))?;
    cfg.dispatch
        .check_frequency_cap()
        .map_err(|e| anyhow::anyhow!(e))?;
    let transports = herald_channels::Transports::from_config(&cfg.channels, Some(&public_url))
        .context("the [channels] configuration is not usable")?;
    let key = match &cfg.server.secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => {
            tracing::warn!(
                "server.secret is not set: unsubscribe links and chat tokens are signed with a key made for this run only, and stop working after a restart (and chat tokens on other nodes)"
            );
            rand::random::<[u8; 32]>().to_vec()
        }
    };
    let links = herald_engine::UnsubscribeLinks::new(&public_url, &key);
    let replies = herald_engine::Replies::new(
        store.clone(),
        Arc::new(transports.clone()),
        cfg.replies.clone(),
    )
    .with_unsubscribe_links(links.clone());
    let mut dispatch = cfg.dispatch.clone();
    dispatch
        .journal
        .get_or_insert_with(|| "herald-dispatch-journal.jsonl".into());
    let dispatcher = Arc::new(
        herald_engine::Dispatcher::new(store.clone(), transports, Arc::new(SystemClock), dispatch)
            .with_unsubscribe_links(links),
    );
    let mut state = herald_server::AppState::new(store.clone())
        .with_replies(replies.clone())
        .with_secure_cookies(cfg.server.secure_cookies())
        .with_public_url(&public_url)
        .with_chat(&key, cfg.chat.limits())
        .with_outreach_limits(&cfg.outreaches)
        .with_sign_in_limits(cfg.sign_in.limits())
        .with_dispatcher(dispatcher.clone());
    if let Some(twilio) = &cfg.channels.twilio {
        state = state.with_twilio(twilio.auth_token.expose(), &public_url);
    }
    let app = herald_server::app(state.clone());
    let listener = tokio::net::TcpListener::bind(cfg.server.bind)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = store.backend(), database = %redact_url(&cfg.database_url), "herald is listening");
    // Printed before the listening line, so whoever waits for that has seen this too. The
    // link goes to stdout, never to the log (stderr); it replaces the links of earlier starts,
    // and stops working once an admin exists.
    if store.count_users().await? == 0 {
        let token = setup_token(&*store, None, Role::Admin, FIRST_ADMIN_LINK_VALID).await?;
        eprintln!(
            "No user yet: the one-time link to create the first admin is on standard output."
        );
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "Create the first admin: {}/setup/{token}",
                cfg.server.web_url(addr)
            )?;
            out.flush()?;
        }
    }
    eprintln!("Herald is listening on http://{addr} (health: http://{addr}/healthz)");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let smtp = match cfg.server.smtp_bind {
        Some(bind) => {
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen for SMTP on {bind}"))?;
            let smtp_addr = listener.local_addr()?;
            let hostname = url_host(&public_url).unwrap_or_else(|| "localhost".to_string());
            let mailbox = Arc::new(herald_engine::EmailInbox::new(replies.clone()));
            eprintln!("Herald accepts email replies over SMTP on {smtp_addr}");
            if cfg.replies.trusted_authserv_id.trim().is_empty() {
                tracing::warn!(
                    "[replies] trusted_authserv_id is not set: every email reply is shown as from an \
                     unverified sender and changes no recipient's state (see docs/security.md)"
                );
            }
            tracing::info!(addr = %smtp_addr, "smtp listener started");
            Some(tokio::spawn(herald_smtp_in::serve(
                listener,
                mailbox,
                herald_smtp_in::SmtpConfig {
                    hostname,
                    ..herald_smtp_in::SmtpConfig::default()
                },
                stopped(),
            )))
        }
        None => None,
    };
    let dispatch = tokio::spawn(dispatcher.run(stopped()));
    herald_server::serve::serve(listener, app, cfg.http.limits(), async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        // Event streams last until their outreach is final; end them so shutdown can finish.
        state.close_event_streams();
    })
    .await
    .context("the HTTP server failed")?;
    // The dispatcher begins no more sends; those begun get `shutdown_grace_secs` to finish and
    // be recorded, and the rest of its batch goes back to the queue.
    dispatch.await.context("the dispatcher failed")?;
    if let Some(smtp) = smtp {
        smtp.await
            .context("the SMTP listener failed")?
            .context("the SMTP listener failed")?;
    }
    tracing::info!("herald stopped");
    Ok(())
}

/// The host of a URL (`herald.example.com` of `https://herald.example.com:8443/x`).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// Resolves on Ctrl-C or SIGTERM; in-flight requests then finish before the process exits.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// SIGTERM that arrives right after Herald says it is listening must shut it down gracefully,
/// not kill it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let ctrl_c = tokio::spawn(tokio::signal::ctrl_c());
    async move {
        let ctrl_c = async {
            match ctrl_c.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot listen for Ctrl-C");
                    std::future::pending::<()>().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(unix)]
        let term = async {
            match term {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = term => {},
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}
