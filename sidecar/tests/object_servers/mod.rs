//! The object stores of the upload tests (the procshot-object-servers crate, shared with
//! the plugin's download tests), and the upload scenarios they all run ([`scenarios`]).

#![allow(dead_code)] // each test binary runs the scenarios of one store

pub use procshot_object_servers::*;

pub mod scenarios;
