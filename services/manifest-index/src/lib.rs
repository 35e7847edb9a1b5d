//! kez-manifest-index
