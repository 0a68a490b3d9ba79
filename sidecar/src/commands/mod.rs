//! The commands, the top layer: each puts the layers below together for one thing a user
//! does. [`capture`] schedules the captures of a run and writes its directory; [`cat`] prints
//! one file of a capture directory (what `kubectl procshot download` runs over exec);
//! [`report`] re-analyzes an existing capture directory; [`locate`] finds a Kubernetes
//! container's host pids; [`upload`] copies a directory to object storage;
//! [`postmortem`] turns a crashed container's log into findings and a directory of its
//! own; [`termination`] is the summary a capture pod leaves for the operator. The
//! `procshot` binary is a thin CLI over these.

pub mod capture;
pub mod cat;
pub mod locate;
pub mod postmortem;
pub mod report;
pub mod termination;
pub mod upload;
