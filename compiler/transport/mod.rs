//! SSH transport (ssh2): one connection per host.
