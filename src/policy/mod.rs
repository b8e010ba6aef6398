//! Identity policy: whether an issuer may sign what a Certificate asks for.

pub mod pattern;
pub mod spiffe;
