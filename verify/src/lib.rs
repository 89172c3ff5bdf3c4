//! # netmorph-verify
//!
//! Checks that netmorph's morphs preserve the network function: proptest [`strategies`] for
//! random networks and morph plans, an independent naive [`oracle`], the [`tolerance`] table,
//! and an [`audit`] API for users' own networks.
#![deny(missing_docs)]

pub mod audit;
pub mod oracle;
pub mod strategies;
pub mod tolerance;
