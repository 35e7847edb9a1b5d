//! kez-auth-callout
