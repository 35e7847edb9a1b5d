//! kez-registry
