//! registry-admin: users, robots, grants and visibility of a quayside registry, on either
//! backend: the embedded data folder of registry-local (`--data-dir`, while registry-local
//! is stopped: redb lets one process hold the file) or the AWS deployment's table
//! (`--backend aws`, the same `QUAYSIDE_*` settings and AWS credentials as registry-local's
//! aws mode).
//!
//! Secrets never travel in arguments: a password is read from standard input (without
//! echo on a terminal); a robot's generated secret is printed once, on standard output.
//! Only argon2id hashes are stored.
//!
//! May call: `quayside::auth` (names, hashing), the [`AccessStore`] port, the backends'
//! constructors. Nothing of HTTP.

use clap::{Parser, Subcommand, ValueEnum};
use quayside::auth::{is_robot_name, is_user_name, secrets};
use quayside::names::RepositoryName;
use quayside::ports::{AccessStore, Permission, PrincipalRecord};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    version,
    about = "Users, robots, grants and visibility of a quayside registry"
)]
struct Args {
    /// Where the registry keeps its state.
    #[arg(long, value_enum, default_value = "embedded", env = "QUAYSIDE_BACKEND")]
    backend: Backend,
    /// The embedded backend's data folder (registry-local's --data-dir).
    #[arg(long, default_value = "./registry-data", env = "QUAYSIDE_DATA_DIR")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    Embedded,
    Aws,
}

#[derive(Subcommand)]
enum Command {
    /// Users: people who log in with a password (read from standard input).
    #[command(subcommand)]
    User(UserCommand),
    /// Robot accounts `namespace+name`, for CI: a generated secret, printed once.
    #[command(subcommand)]
    Robot(RobotCommand),
    /// Grants PRINCIPAL a permission on REPOSITORY (read: pull; write: pull, push,
    /// delete; admin: write, and owns it).
    Grant {
        repository: String,
        principal: String,
        #[arg(value_enum)]
        permission: PermissionArg,
    },
    /// Takes PRINCIPAL's permission on REPOSITORY away.
    Revoke {
        repository: String,
        principal: String,
    },
    /// Lets PRINCIPAL create repositories in NAMESPACE by pushing (`--deny` takes it back).
    AllowCreate {
        principal: String,
        namespace: String,
        #[arg(long)]
        deny: bool,
    },
    /// Makes REPOSITORY public (anyone may pull, also anonymously) or private (the default).
    Visibility {
        repository: String,
        #[arg(value_enum)]
        visibility: Visibility,
    },
    /// The grants and visibility of REPOSITORY.
    Show { repository: String },
    /// Every user and robot, with its create rights and grants.
    List,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Adds a user; its password comes from standard input.
    Add { name: String },
    /// Sets a user's password, from standard input.
    Password { name: String },
    /// Removes a user and its grants.
    Delete { name: String },
}

#[derive(Subcommand)]
enum RobotCommand {
    /// Adds robot `namespace+name` and prints its secret (shown once, stored hashed).
    Add { name: String },
    /// Replaces a robot's secret and prints the new one.
    Rotate { name: String },
    /// Removes a robot and its grants.
    Delete { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
enum PermissionArg {
    Read,
    Write,
    Admin,
}

#[derive(Clone, Copy, ValueEnum)]
enum Visibility {
    Public,
    Private,
}

type Failure = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registry-admin: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn open(args: &Args) -> Result<Arc<dyn AccessStore>, Failure> {
    match args.backend {
        Backend::Embedded => {
            let backend =
                quayside::embedded::EmbeddedBackend::open(&args.data_dir).map_err(|e| {
                    format!(
                        "opening {}: {e} (is registry-local running on it? stop it first: one \
                     process at a time may hold the database)",
                        args.data_dir.display()
                    )
                })?;
            Ok(backend.access)
        }
        #[cfg(feature = "aws")]
        Backend::Aws => {
            let settings = quayside::aws::Settings::from_env()?;
            let aws = quayside::aws::Aws::from_env().await;
            Ok(quayside::backend::aws_access(&aws, &settings))
        }
        #[cfg(not(feature = "aws"))]
        Backend::Aws => Err("this registry-admin was built without the AWS backend: \
            cargo run -p registry-local --features aws --bin registry-admin -- --backend aws …"
            .into()),
    }
}

fn repository(name: &str) -> Result<RepositoryName, Failure> {
    RepositoryName::parse(name).map_err(|e| e.message.into())
}

fn principal_name(name: &str) -> Result<(), Failure> {
    if is_user_name(name) || is_robot_name(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is neither a user name ([a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*, at most 64 \
             characters) nor a robot name (namespace+name)"
        )
        .into())
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A password from standard input: one line, without echo when it is a terminal.
fn read_password(prompt: &str) -> Result<String, Failure> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal {
        eprint!("{prompt}: ");
        let _ = std::io::stderr().flush();
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if terminal {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    read?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.chars().count() < secrets::MIN_PASSWORD_CHARS {
        return Err(format!(
            "a password has at least {} characters",
            secrets::MIN_PASSWORD_CHARS
        )
        .into());
    }
    if password.len() > secrets::MAX_SECRET_BYTES {
        return Err(format!("a password has at most {} bytes", secrets::MAX_SECRET_BYTES).into());
    }
    Ok(password)
}

async fn add_principal(access: &dyn AccessStore, name: &str, secret: &str) -> Result<(), Failure> {
    let record = PrincipalRecord {
        name: name.to_string(),
        secret_hash: secrets::hash_secret(secret)?,
        create_namespaces: Default::default(),
        created: now(),
    };
    if !access.create_principal(&record).await? {
        return Err(format!("{name} exists already").into());
    }
    Ok(())
}

fn found(found: bool, name: &str) -> Result<(), Failure> {
    if found {
        Ok(())
    } else {
        Err(format!("no user or robot named {name}").into())
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let access = open(&args).await?;
    let access = access.as_ref();
    match args.command {
        Command::User(UserCommand::Add { name }) => {
            if !is_user_name(&name) {
                return Err(format!("{name:?} is not a valid user name").into());
            }
            let password = read_password(&format!("password for {name}"))?;
            add_principal(access, &name, &password).await?;
            eprintln!("added user {name} (it may push to {name}/*)");
        }
        Command::User(UserCommand::Password { name }) => {
            if !is_user_name(&name) {
                return Err(format!("{name:?} is not a valid user name").into());
            }
            let password = read_password(&format!("new password for {name}"))?;
            let hash = secrets::hash_secret(&password)?;
            found(access.set_secret(&name, &hash).await?, &name)?;
            eprintln!("password of {name} changed");
        }
        Command::User(UserCommand::Delete { name })
        | Command::Robot(RobotCommand::Delete { name }) => {
            principal_name(&name)?;
            found(access.delete_principal(&name).await?, &name)?;
            eprintln!("deleted {name} and its grants");
        }
        Command::Robot(RobotCommand::Add { name }) => {
            if !is_robot_name(&name) {
                return Err(format!("{name:?} is not a robot name (namespace+name)").into());
            }
            let secret = secrets::new_robot_secret()?;
            add_principal(access, &name, &secret).await?;
            eprintln!("added robot {name}; its secret, shown this once:");
            println!("{secret}");
        }
        Command::Robot(RobotCommand::Rotate { name }) => {
            if !is_robot_name(&name) {
                return Err(format!("{name:?} is not a robot name (namespace+name)").into());
            }
            let secret = secrets::new_robot_secret()?;
            found(
                access
                    .set_secret(&name, &secrets::hash_secret(&secret)?)
                    .await?,
                &name,
            )?;
            eprintln!("new secret of {name}, shown this once (the old one no longer works):");
            println!("{secret}");
        }
        Command::Grant {
            repository: repo,
            principal,
            permission,
        } => {
            let repo = repository(&repo)?;
            principal_name(&principal)?;
            if access.principal(&principal).await?.is_none() {
                return Err(format!("no user or robot named {principal}").into());
            }
            let permission = match permission {
                PermissionArg::Read => Permission::Read,
                PermissionArg::Write => Permission::Write,
                PermissionArg::Admin => Permission::Admin,
            };
            access
                .set_permission(&repo, &principal, Some(permission))
                .await?;
            eprintln!("{principal} has {permission:?} on {repo}");
        }
        Command::Revoke {
            repository: repo,
            principal,
        } => {
            let repo = repository(&repo)?;
            principal_name(&principal)?;
            match access.set_permission(&repo, &principal, None).await? {
                Some(p) => eprintln!("{principal} no longer has {p:?} on {repo}"),
                None => eprintln!("{principal} had no grant on {repo}"),
            }
        }
        Command::AllowCreate {
            principal,
            namespace,
            deny,
        } => {
            principal_name(&principal)?;
            if !is_user_name(&namespace) {
                return Err(format!("{namespace:?} is not a valid namespace").into());
            }
            found(
                access
                    .set_namespace_create(&principal, &namespace, !deny)
                    .await?,
                &principal,
            )?;
            let verb = if deny { "may no longer" } else { "may" };
            eprintln!("{principal} {verb} create repositories in {namespace}");
        }
        Command::Visibility {
            repository: repo,
            visibility,
        } => {
            let repo = repository(&repo)?;
            let public = matches!(visibility, Visibility::Public);
            access.set_public(&repo, public).await?;
            eprintln!(
                "{repo} is {}",
                if public {
                    "public: anyone may pull it"
                } else {
                    "private"
                }
            );
        }
        Command::Show { repository: repo } => {
            let repo = repository(&repo)?;
            let state = access.repository_access(&repo, None).await?;
            println!(
                "{repo}: {}{}",
                if state.public { "public" } else { "private" },
                state
                    .creator
                    .map(|c| format!(", created by {c}"))
                    .unwrap_or_default()
            );
            for (principal, permission) in access.grants(&repo).await? {
                println!("  {principal}: {permission:?}");
            }
        }
        Command::List => {
            for record in access.principals().await? {
                let kind = if record.name.contains('+') {
                    "robot"
                } else {
                    "user"
                };
                let create: Vec<&str> = record
                    .create_namespaces
                    .iter()
                    .map(String::as_str)
                    .collect();
                println!(
                    "{} ({kind}, since {}){}",
                    record.name,
                    record.created,
                    if create.is_empty() {
                        String::new()
                    } else {
                        format!(", may create in {}", create.join(", "))
                    }
                );
                for (repo, permission) in access.grants_of(&record.name).await? {
                    println!("  {repo}: {permission:?}");
                }
            }
        }
    }
    Ok(())
}
