//! kez-webfinger
