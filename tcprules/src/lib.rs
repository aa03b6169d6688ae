//! The work of tcprules and tcprulescheck, kept out of their `main`s so it can be tested.

pub mod check;
pub mod compile;
