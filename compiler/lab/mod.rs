//! `infra lab`: declared hosts booted locally as systemd-nspawn machines.
