//! One function per subcommand, over a [`Cluster`] and a [`Terminal`], each returning the
//! exit code of its outcome (errors map to theirs in [`crate::error`]).

pub mod capture;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::ListParams;
use procshot_operator::api::{DebugSession, Phase};

use crate::cli::{Command, DeleteArgs, DownloadArgs, FindingsArgs, GetArgs, NameArgs};
use crate::cluster::Cluster;
use crate::error::{Error, exit_code};
use crate::sessions::Sessions;
use crate::view::findings::{print_findings, worst};
use crate::view::{self, Paint, Severity};
use crate::{download, output};

/// Where a command prints, and what kind of stream each is.
pub struct Terminal<'a> {
    /// Results (findings, tables, objects).
    pub out: &'a mut dyn Write,
    /// Progress, notes and errors.
    pub err: &'a mut dyn Write,
    /// Whether stdout is a terminal (`capture` then follows the session by default).
    pub out_is_tty: bool,
    /// Whether stderr is a terminal (progress is then redrawn in place).
    pub err_is_tty: bool,
    /// Whether results are coloured.
    pub color: bool,
}

impl Terminal<'_> {
    fn paint(&self) -> Paint {
        Paint { color: self.color }
    }
}

/// Runs `command` in `cluster`.
pub async fn run(
    command: &Command,
    cluster: &Cluster,
    term: &mut Terminal<'_>,
) -> Result<u8, Error> {
    match command {
        Command::Capture(args) => capture::run(args, cluster, term).await,
        Command::Get(args) => get(args, cluster, term).await,
        Command::Describe(args) => describe(args, cluster, term).await,
        Command::Findings(args) => findings(args, cluster, term).await,
        Command::Download(args) => download_command(args, cluster, term).await,
        Command::Delete(args) => delete(args, cluster, term).await,
    }
}

/// The exit code a session's end means for scripts.
pub fn outcome_code(session: &DebugSession) -> u8 {
    let status = session.status.clone().unwrap_or_default();
    if status.phase == Phase::Failed {
        exit_code::SESSION_FAILED
    } else if worst(&status.findings).is_some_and(|s| s >= Severity::Warning) {
        exit_code::FINDINGS
    } else {
        exit_code::OK
    }
}

async fn get(args: &GetArgs, cluster: &Cluster, term: &mut Terminal<'_>) -> Result<u8, Error> {
    let sessions = Sessions::new(cluster.client()?, &cluster.namespace);
    let list = match &args.name {
        Some(name) => vec![sessions.get(name).await?],
        None => sessions.list(args.all_namespaces).await?,
    };
    match (args.format, &args.name) {
        (Some(format), Some(_)) => output::print(term.out, &list[0], format)?,
        (Some(format), None) => output::print_list(term.out, &list, format)?,
        (None, _) if list.is_empty() => {
            writeln!(
                term.err,
                "No debugsessions found in namespace {}.",
                cluster.namespace
            )?;
        }
        (None, _) => {
            let paint = term.paint();
            for line in view::table::lines(
                &list,
                args.all_namespaces,
                k8s_openapi::jiff::Timestamp::now(),
                paint,
            ) {
                writeln!(term.out, "{line}")?;
            }
        }
    }
    Ok(exit_code::OK)
}

async fn describe(
    args: &NameArgs,
    cluster: &Cluster,
    term: &mut Terminal<'_>,
) -> Result<u8, Error> {
    let client = cluster.client()?;
    let session = Sessions::new(client, &cluster.namespace)
        .get(&args.name)
        .await?;
    let events: Api<Event> = Api::namespaced(client.clone(), &cluster.namespace);
    let fields = format!(
        "involvedObject.kind=DebugSession,involvedObject.name={}",
        args.name
    );
    let events = events
        .list(&ListParams::default().fields(&fields))
        .await
        .map(|list| {
            let mut items = list.items;
            items.sort_by_key(|e| {
                e.last_timestamp
                    .clone()
                    .or(e.first_timestamp.clone())
                    .map(|t| t.0)
            });
            items
        })
        .map_err(|e| {
            Error::from_kube(
                e,
                crate::error::Request::new("list", "events", &cluster.namespace),
                "",
                "event",
            )
            .to_string()
        });
    let paint = term.paint();
    view::describe::print(
        term.out,
        &session,
        &events,
        k8s_openapi::jiff::Timestamp::now(),
        paint,
    )?;
    Ok(exit_code::OK)
}

async fn findings(
    args: &FindingsArgs,
    cluster: &Cluster,
    term: &mut Terminal<'_>,
) -> Result<u8, Error> {
    let session = Sessions::new(cluster.client()?, &cluster.namespace)
        .get(&args.name)
        .await?;
    let status = session.status.clone().unwrap_or_default();
    match args.format {
        Some(format) => output::print(term.out, &status.findings, format)?,
        None if status.findings.is_empty() => {
            let why = if status.phase.is_finished() {
                "nothing crossed a threshold"
            } else {
                "the session has not finished"
            };
            writeln!(
                term.err,
                "no findings for {}: {why}",
                view::qualified_name(&session)
            )?;
        }
        None => {
            let paint = term.paint();
            print_findings(term.out, &status.findings, paint)?
        }
    }
    if !status.phase.is_finished() && args.format.is_some() {
        writeln!(
            term.err,
            "{} is {}: more findings may come",
            view::qualified_name(&session),
            view::phase_name(status.phase)
        )?;
    }
    Ok(outcome_code(&session))
}

async fn download_command(
    args: &DownloadArgs,
    cluster: &Cluster,
    term: &mut Terminal<'_>,
) -> Result<u8, Error> {
    let client = cluster.client()?;
    let session = Sessions::new(client, &cluster.namespace)
        .get(&args.name)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &args.capture_namespace);
    run_download(&session, &args.dir, pods, &args.capture_namespace, term).await?;
    Ok(exit_code::OK)
}

/// Downloads a session's files, printing where they went.
pub async fn run_download(
    session: &DebugSession,
    dir: &Path,
    pods: Api<Pod>,
    capture_namespace: &str,
    term: &mut Terminal<'_>,
) -> Result<(), Error> {
    let err = &mut *term.err;
    let downloaded = download::download(session, dir, pods, capture_namespace, &mut |line| {
        let _ = writeln!(err, "{line}");
    })
    .await?;
    for capture in downloaded {
        writeln!(
            term.out,
            "downloaded {} files ({}) from {} into {}, each checked against manifest.json",
            capture.files,
            view::bytes(capture.bytes),
            view::inert(&capture.from),
            capture.dir.display()
        )?;
    }
    Ok(())
}

async fn delete(
    args: &DeleteArgs,
    cluster: &Cluster,
    term: &mut Terminal<'_>,
) -> Result<u8, Error> {
    let sessions = Sessions::new(cluster.client()?, &cluster.namespace);
    sessions.delete(&args.name).await?;
    if args.wait {
        // The operator's finalizer removes the capture pods first.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while sessions.get_opt(&args.name).await?.is_some() {
            if tokio::time::Instant::now() >= deadline {
                writeln!(
                    term.err,
                    "{} is still being deleted after 60s: its finalizer waits for the operator \
                     (is procshot-operator running?)",
                    args.name
                )?;
                return Ok(exit_code::TIMED_OUT);
            }
            tokio::time::sleep(crate::follow::POLL).await;
        }
    }
    writeln!(
        term.out,
        "debugsession.procshot.dev \"{}\" deleted",
        args.name
    )?;
    Ok(exit_code::OK)
}
