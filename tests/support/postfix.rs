//! The loopback Postfix of `scripts/postfix-env.sh`, by the names the test files use; it is
//! started and read like the other real MTAs (see [`super::mta`]).

// Not every test binary uses every name.
#[allow(unused_imports)]
pub use super::mta::{Mta as Postfix, postfix, repo};
