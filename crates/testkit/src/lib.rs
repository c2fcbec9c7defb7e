//! Real servers for tests and the demo, started as child processes in temporary directories:
//! PostgreSQL, Samba AD DC, OpenLDAP (slapd), and the test certificate authority they share.
//! Each fixture stops its server when dropped.

pub mod postgres;
