//! ldap
