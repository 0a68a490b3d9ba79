//! Access to the target process, the lowest layer every capture goes through: the open
//! `/proc/PID` handle and the identity it reads ([`target`]), stopping threads with ptrace
//! within a bound and always undoing it ([`ptrace`]), and running code inside the target's
//! network namespace ([`netns`]). Nothing here knows what a capture is.

pub mod netns;
pub mod ptrace;
pub mod target;

pub use target::{Target, TargetIdentity};
