use std::process::ExitCode;

use anyhow::Context;
use app::config::Settings;
use app::{Application, shutdown_signal, telemetry};
use clap::{Parser, Subcommand};

/// The users service.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default). Applies pending migrations first.
    Serve,
    /// Run only the background job workers (no HTTP).
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the effective configuration (secrets redacted) and where each value came
    /// from, then exit.
    Config,
    /// Print the OpenAPI document (YAML) and exit.
    Openapi,
    /// Exit 0 when this host's server answers `/api/health/ready` with 200 (on `PORT`);
    /// for container health checks, where no curl is available.
    Healthcheck,
    /// Create an admin, or promote an existing user to admin and set their password.
    /// The password is read from ADMIN_PASSWORD, else from the first line of stdin.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A local `.env` is a convenience for development; real environment variables win.
    let _ = dotenvy::dotenv();
    let loaded = match app::layers::load() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if matches!(command, Command::Config) {
        print!("{}", app::layers::describe(&loaded));
        return ExitCode::SUCCESS;
    }
    let settings = loaded.settings;
    // Telemetry lives outside the runtime: its exporter flushes with blocking I/O.
    let telemetry = (!matches!(command, Command::Openapi | Command::Healthcheck))
        .then(|| telemetry::init(&settings));
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    if matches!(command, Command::Serve | Command::Worker) {
        raise_open_files_limit();
    }
    // A multi-thread runtime: actix-web still gives each HTTP worker its own thread,
    // while gRPC, database connection drivers and background tasks share the
    // work-stealing pool.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match run(command, &settings).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "exiting");
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    });
    drop(runtime);
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    code
}

/// Every connection is a descriptor, and the usual soft limit (1024) is far below what
/// the connection caps allow: raise it to the hard limit the system grants.
fn raise_open_files_limit() {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, hard)) => match rlimit::increase_nofile_limit(hard) {
            Ok(now) => tracing::info!(soft, hard, now, "open files limit"),
            Err(error) => tracing::warn!(soft, hard, %error, "cannot raise the open files limit"),
        },
        Err(error) => tracing::warn!(%error, "cannot read the open files limit"),
    }
}

/// The admin password: never from argv, where other users can read it.
fn admin_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("ADMIN_PASSWORD") {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the admin password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(
        !password.is_empty(),
        "no password: set ADMIN_PASSWORD or pipe it on stdin"
    );
    Ok(password)
}

async fn run(command: Command, settings: &Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            Application::build(settings)
                .await?
                .run_until(shutdown_signal())
                .await
        }
        Command::Worker => app::run_workers(settings, shutdown_signal()).await,
        Command::Migrate => {
            let url = settings
                .database
                .url
                .as_ref()
                .context("DATABASE_URL must be set to migrate")?
                .expose();
            let applied = postgres_adapter::run_migrations(url).await?;
            tracing::info!(applied = ?applied, "migrations applied");
            Ok(())
        }
        Command::Healthcheck => app::healthcheck(settings.listen.port).await,
        Command::Config => Ok(()),
        Command::Openapi => {
            print!("{}", http_adapter::openapi_yaml());
            Ok(())
        }
        Command::CreateAdmin { email, name } => {
            let password = admin_password()?;
            let admin = app::create_admin(settings, &name, &email, &password).await?;
            tracing::info!(user_id = %admin.id, email = %admin.email, "admin ready");
            println!("admin {} ({})", admin.email, admin.id);
            Ok(())
        }
    }
}
