//! kez-client
