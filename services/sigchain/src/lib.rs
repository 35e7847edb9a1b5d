//! kez-sigchain
