//! `capture`: resolve the target, create the session (or print it, for `--dry-run`),
//! follow it to the end, print its findings, download its files.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::cli::{CaptureArgs, DryRun, Format};
use crate::cluster::Cluster;
use crate::error::{Error, exit_code};
use crate::follow::{self, Ended};
use crate::output;
use crate::session::{self, DEFAULT_TIMEOUT};
use crate::sessions::{self, Sessions};
use crate::target::{self, TargetArg};
use crate::view::findings::print_result;
use crate::view::phase_of;
use crate::view::progress::{LiveProgress, PlainProgress, Progress};

use super::{Terminal, outcome_code, run_download};

/// Runs `capture`; returns the exit code.
pub async fn run(
    args: &CaptureArgs,
    cluster: &Cluster,
    term: &mut Terminal<'_>,
) -> Result<u8, Error> {
    let target = TargetArg::from_args(args.target.as_deref(), args.selector.as_deref())?;
    if let Some(name) = &args.name {
        session::check_name(name)?;
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| session::generated_name(target.name_prefix()));
    let namespace = cluster.namespace.as_str();
    let container = args.container.as_deref();
    let offline = target.offline_spec(container, args.max_pods);
    let (spec, note, requested_by) = match (args.dry_run, offline) {
        (DryRun::Client, Some(spec)) => (spec, None, None),
        _ => {
            let client = cluster.client()?;
            let resolved =
                target::resolve(client, namespace, &target, container, args.max_pods).await?;
            let user = match args.dry_run {
                DryRun::Client => None,
                _ => sessions::whoami(client).await,
            };
            (resolved.spec, resolved.note, user)
        }
    };
    let session = session::build(args, spec, &name, namespace, requested_by.as_deref())?;
    if args.dry_run == DryRun::Client {
        return print_created(term, &session, args.format(), " (dry run)");
    }
    let sessions = Sessions::new(cluster.client()?, namespace);
    if args.dry_run == DryRun::Server {
        let checked = sessions.create(&session, true).await?;
        return print_created(term, &checked, args.format(), " (server dry run)");
    }
    let created = sessions.create(&session, false).await?;
    if let Some(note) = note {
        writeln!(term.err, "{note}")?;
    }
    let wait = args.wait.unwrap_or(term.out_is_tty) || args.download.is_some();
    if !wait {
        return print_created(term, &created, args.format(), "");
    }
    writeln!(
        term.err,
        "debugsession.procshot.dev/{name} created; following it (Ctrl-C stops following, not the capture)"
    )?;
    let timeout = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let bound = timeout + follow::GRACE;
    let ended = {
        let mut progress: Box<dyn Progress + '_> = if term.err_is_tty {
            Box::new(LiveProgress::new())
        } else {
            Box::new(PlainProgress::new(&mut *term.err))
        };
        let ended = follow::follow(&sessions, &name, bound, progress.as_mut()).await;
        progress.finish();
        ended?
    };
    let (session, timed_out) = match ended {
        Ended::Finished(session) => (session, None),
        Ended::TimedOut(session, elapsed) => (session, Some(elapsed)),
    };
    match args.format() {
        Some(format) => output::print(term.out, &*session, format)?,
        None => {
            let paint = term.paint();
            print_result(term.out, &session, paint)?
        }
    }
    if let Some(elapsed) = timed_out {
        writeln!(
            term.err,
            "timed out: {name} is still {} after {}s (its deadline is {}): follow it with \
             kubectl procshot get {name}",
            crate::view::phase_name(phase_of(&session)),
            elapsed.as_secs(),
            humantime::format_duration(Duration::from_secs(timeout.as_secs()))
        )?;
        return Ok(exit_code::TIMED_OUT);
    }
    if let Some(dir) = &args.download
        && phase_of(&session) == procshot_operator::api::Phase::Succeeded
    {
        let pods: Api<Pod> = Api::namespaced(cluster.client()?.clone(), &args.capture_namespace);
        run_download(&session, dir, pods, &args.capture_namespace, term).await?;
    }
    Ok(outcome_code(&session))
}

/// Prints a created (or checked) session as kubectl does: its name, or the object in
/// `format`.
fn print_created(
    term: &mut Terminal<'_>,
    session: &procshot_operator::api::DebugSession,
    format: Option<Format>,
    how: &str,
) -> Result<u8, Error> {
    match format {
        Some(format) => output::print(term.out, session, format)?,
        None => writeln!(
            term.out,
            "debugsession.procshot.dev/{} created{how}",
            session.metadata.name.as_deref().unwrap_or_default()
        )?,
    }
    Ok(exit_code::OK)
}
