//! kez-gateway
